"""Codebook folders: exact round trip, atomic writes, damaged folders refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantizer import Codebook, CodebookError, RQKMeans
from quantizer.codebook import CENTROIDS_FILE, META_FILE


@pytest.fixture
def saved(tmp_path: Path, vectors: np.ndarray) -> tuple[Codebook, Path]:
    book = RQKMeans(levels=3, codes=8, progress=False).fit(vectors)
    book = book.with_report({"note": "kept"})
    return book, book.save(tmp_path / "cb")


def test_round_trip_is_exact(saved: tuple[Codebook, Path], vectors: np.ndarray) -> None:
    book, path = saved
    loaded = Codebook.load(path)
    np.testing.assert_array_equal(loaded.centroids, book.centroids)
    assert loaded.version == book.version and loaded.report == {"note": "kept"}
    np.testing.assert_array_equal(loaded.encode(vectors), book.encode(vectors))
    meta = json.loads((path / META_FILE).read_text())
    assert {
        "version",
        "levels",
        "codes",
        "dim",
        "seed",
        "n_train",
        "created_at",
        "parent_version",
        "report",
        "sha256",
    } <= meta.keys()


def test_existing_folder_is_never_overwritten(saved: tuple[Codebook, Path]) -> None:
    book, path = saved
    before = (path / CENTROIDS_FILE).read_bytes()
    with pytest.raises(CodebookError, match="already exists"):
        book.save(path)
    assert (path / CENTROIDS_FILE).read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["cb"]  # no temporary left behind


def test_flipped_byte_fails_the_checksum(saved: tuple[Codebook, Path]) -> None:
    _, path = saved
    data = bytearray((path / CENTROIDS_FILE).read_bytes())
    data[-5] ^= 0xFF
    (path / CENTROIDS_FILE).write_bytes(bytes(data))
    with pytest.raises(CodebookError, match="does not match its checksum"):
        Codebook.load(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / CENTROIDS_FILE).unlink(), "centroids.safetensors is missing"),
        (lambda p: (p / META_FILE).write_text("{"), "codebook.json is unreadable"),
        (lambda p: _edit_meta(p, levels=5), "metadata says float32"),
        (lambda p: _edit_meta(p, version="x"), "version does not match"),
        (lambda p: _truncate(p), "checksum"),
    ],
)
def test_damaged_folder_is_refused(saved: tuple[Codebook, Path], damage, message: str) -> None:
    _, path = saved
    damage(path)
    with pytest.raises(CodebookError, match=message):
        Codebook.load(path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CodebookError, match="not a codebook folder"):
        Codebook.load(tmp_path / "nothing")


def _edit_meta(path: Path, **changes: object) -> None:
    meta = json.loads((path / META_FILE).read_text())
    (path / META_FILE).write_text(json.dumps(meta | changes))


def _truncate(path: Path) -> None:
    data = (path / CENTROIDS_FILE).read_bytes()
    (path / CENTROIDS_FILE).write_bytes(data[: len(data) // 2])
