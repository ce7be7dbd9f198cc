"""Both adapters parse small generated files; bad files fail with the file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from api.evaluation.adapters import DatasetError, Interactions, MovieLensTmdb

ITEMS_HEADER = "movie_id,title,Action,Comedy,Drama,year,overview\n"


def write_interactions(folder: Path, rows: list[str], header: str) -> Path:
    folder.mkdir(exist_ok=True)
    items = [
        {"item_id": "a", "title": "Cooking live", "tags": ["food"], "start_time": 100.0},
        {"item_id": "b", "title": "Chess blitz", "asr": "knight to f3", "images": ["b.png"]},
    ]
    (folder / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    (folder / "interactions.csv").write_text(header + "".join(r + "\n" for r in rows))
    return folder


def write_movielens(folder: Path, ratings: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "items.csv").write_text(
        ITEMS_HEADER
        + '1,Toy Story (1995),0,1,0,1995,"Toys come alive."\n'
        + '2,Heat (1995),1,0,1,1995,"A heist."\n'
        + '2,Heat duplicate (1995),1,0,1,1995,"ignored: the first row wins"\n'
    )
    (folder / "posters").mkdir(exist_ok=True)
    (folder / "posters" / "1.jpg").write_bytes(b"not read by the adapter")
    (folder / "ratings.csv").write_text(
        "user_id,movie_id,rating,unix_timestamp\n" + "".join(r + "\n" for r in ratings)
    )
    return folder


def test_interactions_with_labels_context_images_and_start_times(tmp_path: Path) -> None:
    folder = write_interactions(
        tmp_path / "d",
        ["u1,a,10,1,2", "u2,b,10,0,1", "u1,b,20,1,0"],
        "user_id,item_id,timestamp,label,device\n",
    )
    data = Interactions().load(folder)
    assert [s.slice_id for s in data.slices] == ["a", "b"]
    assert data.slices[1].frames == [str(folder / "b.png")]
    assert data.slices[0].tags == ["food"]
    assert data.item.tolist() == [0, 1, 1]
    assert data.label.tolist() == [1.0, 0.0, 1.0]
    assert data.context["device"].tolist() == [2, 1, 0]
    assert data.start_ts[0] == 100.0 and np.isnan(data.start_ts[1])


def test_interactions_rating_uses_the_threshold(tmp_path: Path) -> None:
    folder = write_interactions(
        tmp_path / "d", ["u1,a,1,3", "u1,b,2,4.5"], "user_id,item_id,timestamp,rating\n"
    )
    assert Interactions(label_threshold=3.0).load(folder).label.tolist() == [1.0, 1.0]
    assert Interactions(label_threshold=4.0).load(folder).label.tolist() == [0.0, 1.0]


def test_movielens_sorts_by_time_keeps_the_first_item_row_and_binarises(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path / "ml", ["7,2,5,300", "8,1,3,100", "7,1,4,200"])
    data = MovieLensTmdb().load(folder)
    assert data.ts.tolist() == [100.0, 200.0, 300.0]
    assert data.user.tolist() == ["8", "7", "7"]
    assert data.label.tolist() == [0.0, 1.0, 1.0]
    assert [s.title for s in data.slices] == ["Toy Story (1995)", "Heat (1995)"]
    assert data.slices[1].tags == ["Action", "Drama"]
    assert data.slices[0].frames == [str((folder / "posters" / "1.jpg").resolve())]
    assert data.slices[1].frames == []


def test_subset_keeps_only_the_items_the_events_use(tmp_path: Path) -> None:
    folder = write_interactions(
        tmp_path / "d", ["u1,b,10,1", "u2,a,11,0"], "user_id,item_id,timestamp,label\n"
    )
    head = Interactions().load(folder).head(1)
    assert [s.slice_id for s in head.slices] == ["b"] and head.item.tolist() == [0]
    assert np.isnan(head.start_ts).all()


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["u1,a,10"], "user_id,item_id,label\n", "missing column(s) timestamp"),
        (["u1,a,10"], "user_id,item_id,timestamp\n", "needs a 'label' or a 'rating' column"),
        (["u1,a,10,1", "u1,zz,11,1"], "user_id,item_id,timestamp,label\n", "line 3: unknown"),
        (["u1,a,10,1", "u1,b,9,1"], "user_id,item_id,timestamp,label\n", "sort the file"),
        (["u1,a,ten,1"], "user_id,item_id,timestamp,label\n", "column timestamp: 'ten'"),
    ],
)
def test_bad_interactions_files_name_the_problem(
    tmp_path: Path, rows: list[str], header: str, message: str
) -> None:
    folder = write_interactions(tmp_path / "d", rows, header)
    with pytest.raises(DatasetError, match=r"interactions\.csv") as error:
        Interactions().load(folder)
    assert message in str(error.value)


def test_bad_items_file_names_the_line(tmp_path: Path) -> None:
    folder = write_interactions(tmp_path / "d", [], "user_id,item_id,timestamp,label\n")
    (folder / "items.jsonl").write_text('{"item_id": "a"}\n{"title": "no id"}\n')
    with pytest.raises(DatasetError, match=r"items.jsonl, line 2: needs a string 'item_id'"):
        Interactions().load(folder)
    (folder / "items.jsonl").write_text('{"item_id": "a", "tags": "not a list"}\n')
    with pytest.raises(DatasetError, match=r"items.jsonl, line 1: .*tags"):
        Interactions().load(folder)


def test_bad_movielens_files_name_the_problem(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path / "ml", ["7,99,5,300"])
    with pytest.raises(DatasetError, match=r"ratings.csv, line 2: movie_id '99' is not in"):
        MovieLensTmdb().load(folder)
    (folder / "ratings.csv").write_text("user_id,movie_id,rating\n7,1,5\n")
    with pytest.raises(DatasetError, match=r"missing column.*unix_timestamp"):
        MovieLensTmdb().load(folder)
    with pytest.raises(DatasetError, match="file not found"):
        Interactions().load(tmp_path / "nothing")
