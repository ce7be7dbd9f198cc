"""Dataset adapters: a platform's logs -> one time-ordered event stream plus one slice per item.

The replay needs the same few things from every source (who, which item, when, a
binary label, optional context; and each item's text and images), so an adapter is
one method that returns a :class:`Dataset`. MovieLens with TMDB metadata and a
generic interactions CSV + items JSONL are built in; MIND-style impression logs or
Twitch-style sessions plug in by subclassing :class:`DatasetAdapter` and adding
themselves to :data:`ADAPTERS`. Bad input fails here, naming file, line and column.
"""

from __future__ import annotations

import csv
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from encoder.datasets.movielens import movie_slices
from encoder.slices import SliceInput, SliceLine

TEXT_FIELDS = ("title", "ocr", "asr", "author", "comments", "tags")


class EvaluationError(ValueError):
    """Bad input to the evaluation (data or settings); the message says what to do."""


class DatasetError(EvaluationError):
    """A dataset file is missing or malformed; the message says where and what to do."""


@dataclass(frozen=True)
class Dataset:
    """Events in time order; ``item`` indexes ``slices`` (one slice = one room per item)."""

    name: str
    user: np.ndarray  # (n,) str user ids
    item: np.ndarray  # (n,) int index into slices
    ts: np.ndarray  # (n,) float64 seconds, non-decreasing
    label: np.ndarray  # (n,) float64 in {0, 1}
    context: dict[str, np.ndarray]  # optional int columns, e.g. {"device": ...}
    slices: list[SliceInput]  # slice_id is the item id
    start_ts: np.ndarray  # (items,) float64 room start time, NaN when unknown

    def __len__(self) -> int:
        return len(self.ts)

    def subset(self, events: np.ndarray) -> Dataset:
        """The events selected by the boolean mask ``events``, and only the items they use.

        For quick runs and tests: fewer items means less to encode.
        """
        used, item = np.unique(self.item[events], return_inverse=True)
        return Dataset(
            self.name,
            self.user[events],
            item.astype(np.int64),
            self.ts[events],
            self.label[events],
            {k: v[events] for k, v in self.context.items()},
            [self.slices[i] for i in used],
            self.start_ts[used],
        )

    def head(self, n: int) -> Dataset:
        """The first ``n`` events (a time prefix) and their items."""
        return self.subset(np.arange(len(self)) < n)


class DatasetAdapter(ABC):
    """Reads one kind of dataset folder; ``label_threshold`` binarises ratings (>=)."""

    kind: str

    def __init__(self, label_threshold: float = 4.0) -> None:
        self.label_threshold = label_threshold

    @abstractmethod
    def load(self, data_dir: Path) -> Dataset:
        """The dataset of ``data_dir``; raises DatasetError naming the bad file and line."""


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """CSV rows with their file line numbers; the header must hold every ``required`` column."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)} in the header "
                f"{reader.fieldnames}; add them (see README: evaluation data formats)"
            )
        for row in reader:
            yield reader.line_num, row


def _number(path: Path, line: int, column: str, text: str | None) -> float:
    try:
        value = float(text or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DatasetError(f"{path}, line {line}, column {column}: {text!r} is not a number")
    return value


class MovieLensTmdb(DatasetAdapter):
    """``ratings.csv`` + ``items.csv`` + ``posters/`` of movielens100k_tmdb; label = rating >= t.

    Ratings are sorted by time here (the file is not); movies have no start time, so a
    room's age is the time since its first rating.
    """

    kind = "movielens-tmdb"

    def load(self, data_dir: Path) -> Dataset:
        try:
            movies = movie_slices(data_dir)
        except KeyError as exc:
            raise DatasetError(f"{data_dir / 'items.csv'}: missing column {exc}") from exc
        index = {movie: i for i, movie in enumerate(movies)}
        slices = [
            SliceInput(**msgspec.structs.asdict(line) | {"slice_id": movie})
            for movie, line in movies.items()
        ]
        path = data_dir / "ratings.csv"
        users, items, ts, label = [], [], [], []
        for line, row in _rows(path, ("user_id", "movie_id", "rating", "unix_timestamp")):
            if row["movie_id"] not in index:
                raise DatasetError(
                    f"{path}, line {line}: movie_id {row['movie_id']!r} is not in items.csv"
                )
            users.append(row["user_id"])
            items.append(index[row["movie_id"]])
            ts.append(_number(path, line, "unix_timestamp", row["unix_timestamp"]))
            rating = _number(path, line, "rating", row["rating"])
            label.append(float(rating >= self.label_threshold))
        order = np.argsort(np.asarray(ts), kind="stable")
        return Dataset(
            self.kind,
            np.asarray(users, dtype=object)[order],
            np.asarray(items, dtype=np.int64)[order],
            np.asarray(ts, dtype=np.float64)[order],
            np.asarray(label)[order],
            {},
            slices,
            np.full(len(slices), np.nan),
        )


class Interactions(DatasetAdapter):
    """The generic export: ``interactions.csv`` and ``items.jsonl`` (see README).

    interactions.csv: user_id, item_id, timestamp (unix seconds, non-decreasing), and
    ``label`` (0/1) or ``rating`` (label = rating >= threshold); any other integer
    column is context (``device`` ...). items.jsonl: one object per line with
    ``item_id``, text fields (title, ocr, asr, author, comments, tags), optional
    ``images`` (paths relative to the file) and ``start_time``/``end_time``.
    """

    kind = "interactions"

    def load(self, data_dir: Path) -> Dataset:
        slices, start = self._items(data_dir / "items.jsonl")
        index = {s.slice_id: i for i, s in enumerate(slices)}
        path = data_dir / "interactions.csv"
        rows = _rows(path, ("user_id", "item_id", "timestamp"))
        users, items, ts, label = [], [], [], []
        context: dict[str, list[int]] = {}
        for line, row in rows:
            if "label" not in row and "rating" not in row:
                raise DatasetError(f"{path}: needs a 'label' or a 'rating' column")
            if row["item_id"] not in index:
                raise DatasetError(
                    f"{path}, line {line}: unknown item_id {row['item_id']!r}; "
                    "every item must have a line in items.jsonl"
                )
            t = _number(path, line, "timestamp", row["timestamp"])
            if ts and t < ts[-1]:
                raise DatasetError(
                    f"{path}, line {line}: timestamp {t:g} is earlier than the line before "
                    f"({ts[-1]:g}); sort the file by timestamp"
                )
            users.append(row["user_id"])
            items.append(index[row["item_id"]])
            ts.append(t)
            if "label" in row:
                label.append(float(_number(path, line, "label", row["label"]) > 0))
            else:
                rating = _number(path, line, "rating", row["rating"])
                label.append(float(rating >= self.label_threshold))
            for column in row.keys() - {"user_id", "item_id", "timestamp", "label", "rating"}:
                value = _number(path, line, column, row[column])
                context.setdefault(column, []).append(int(value))
        return Dataset(
            self.kind,
            np.asarray(users, dtype=object),
            np.asarray(items, dtype=np.int64),
            np.asarray(ts, dtype=np.float64),
            np.asarray(label, dtype=np.float64),
            {k: np.asarray(v, dtype=np.int64) for k, v in context.items()},
            slices,
            start,
        )

    @staticmethod
    def _items(path: Path) -> tuple[list[SliceInput], np.ndarray]:
        if not path.is_file():
            raise DatasetError(f"{path}: file not found")
        slices: list[SliceInput] = []
        start: list[float] = []
        seen: set[str] = set()
        with path.open(encoding="utf-8") as fh:
            for line, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}, line {line}: not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict) or not isinstance(obj.get("item_id"), str):
                    raise DatasetError(f"{path}, line {line}: needs a string 'item_id'")
                if obj["item_id"] in seen:
                    raise DatasetError(f"{path}, line {line}: item_id {obj['item_id']!r} repeats")
                seen.add(obj["item_id"])
                fields = {k: obj[k] for k in TEXT_FIELDS if k in obj}
                fields |= {"slice_id": obj["item_id"], "frames": obj.get("images", [])}
                try:  # validated as the slice JSONL is; image paths relative to the file
                    slices.append(msgspec.convert(fields, SliceLine).to_input(path.parent))
                except msgspec.ValidationError as exc:
                    raise DatasetError(f"{path}, line {line}: {exc}") from exc
                start_time = obj.get("start_time")
                start.append(math.nan if start_time is None else float(start_time))
        if not slices:
            raise DatasetError(f"{path}: no items")
        return slices, np.asarray(start, dtype=np.float64)


ADAPTERS: dict[str, type[DatasetAdapter]] = {
    adapter.kind: adapter for adapter in (MovieLensTmdb, Interactions)
}
