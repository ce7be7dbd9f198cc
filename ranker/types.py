"""The ranker's typed inputs and outputs: numpy arrays in frozen dataclasses.

Keys are int64 (see :mod:`ranker.keys` for turning string ids into keys), LUCID
codes are int arrays with L levels in the last axis, times are event-time seconds.
Shapes are checked when an object is made, so a bad batch fails at the boundary
with the field's name, not deep inside a forward pass.

Example, one event for user "u1" on room "r9" (L=4, context hour/weekday/device)::

    EventBatch(
        ts=np.array([1.7e9]), user=id_keys(["u1"]), room=id_keys(["r9"]),
        room_lucid=np.array([[12, 3, 40, 7]]), slice_lucid=np.array([[12, 3, 41, 0]]),
        room_age_s=np.array([600.0]), context=np.array([[20, 4, 1]]),
        labels={"click": np.array([1.0]), "watch_s": np.array([95.0])},
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ranker.errors import RankerError

# Raw labels an event may carry; a missing one is all zeros (an impression is a negative).
LABELS = ("click", "watch_s", "like", "follow")


def _rows(name: str, array: np.ndarray, n: int, ndim: int) -> None:
    if array.ndim != ndim or array.shape[0] != n:
        raise RankerError(f"{name} must have {ndim} dimension(s) and {n} rows, got {array.shape}")


def _finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(np.asarray(array, dtype=np.float64)).all():
        raise RankerError(f"{name} must be finite seconds, got NaN or inf")


@dataclass(frozen=True)
class History:
    """Recent engagements of n users: newest first, ``mask`` marks the filled entries."""

    codes: np.ndarray  # (n, H, L) int room LUCIDs
    ts: np.ndarray  # (n, H) float64 engagement times
    mask: np.ndarray  # (n, H) bool

    def __post_init__(self) -> None:
        n = self.codes.shape[0] if self.codes.ndim == 3 else -1
        _rows("history.codes", self.codes, n, 3)
        if self.ts.shape != self.codes.shape[:2] or self.mask.shape != self.codes.shape[:2]:
            raise RankerError(
                f"history ts and mask must be {self.codes.shape[:2]}, "
                f"got {self.ts.shape} and {self.mask.shape}"
            )

    def __len__(self) -> int:
        return self.codes.shape[0]

    def take(self, index: np.ndarray | slice) -> History:
        return History(codes=self.codes[index], ts=self.ts[index], mask=self.mask[index])


def _optional_rows(name: str, array: np.ndarray | None, n: int) -> None:
    if array is not None:
        _rows(name, np.asarray(array), n, 2)
        if not np.isfinite(array).all():
            raise RankerError(f"{name} must be finite, got NaN or inf")


@dataclass(frozen=True)
class Candidates:
    """K candidate rooms of one request.

    ``stats``: each room's engagement statistics
    (:meth:`ranker.engagement.EngagementCounter.features`); None reads as a room
    nobody has engaged with. ``content``: each room's content embedding, which the
    ``dense_content`` variant reads (None there is an error).
    """

    room: np.ndarray  # (K,) int64 room keys
    room_lucid: np.ndarray  # (K, L) int
    slice_lucid: np.ndarray  # (K, L) int, the latest slice's code
    room_age_s: np.ndarray  # (K,) seconds since the room started
    stats: np.ndarray | None = None  # (K, S) float32
    content: np.ndarray | None = None  # (K, E) float32

    def __post_init__(self) -> None:
        k = len(self.room)
        _rows("candidates.room", np.asarray(self.room), k, 1)
        _rows("candidates.room_lucid", self.room_lucid, k, 2)
        _rows("candidates.slice_lucid", self.slice_lucid, k, 2)
        _rows("candidates.room_age_s", self.room_age_s, k, 1)
        _finite("candidates.room_age_s", self.room_age_s)
        _optional_rows("candidates.stats", self.stats, k)
        _optional_rows("candidates.content", self.content, k)

    def __len__(self) -> int:
        return len(self.room)


@dataclass(frozen=True)
class EventBatch:
    """n impressions with their labels, in time order.

    ``history`` and ``stats`` are optional: the trainer reads its own history store
    and engagement counter when they are None (the state as the stream built it,
    which is what you want for training). ``content``: the rooms' content
    embeddings, which only ``dense_content`` reads.
    """

    ts: np.ndarray  # (n,) float64 event time
    user: np.ndarray  # (n,) int64 user keys
    room: np.ndarray  # (n,) int64 room keys
    room_lucid: np.ndarray  # (n, L)
    slice_lucid: np.ndarray  # (n, L)
    room_age_s: np.ndarray  # (n,)
    context: np.ndarray  # (n, C) ints, columns in the order of settings.ranker.context
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)  # names from LABELS
    history: History | None = None
    stats: np.ndarray | None = None  # (n, S)
    content: np.ndarray | None = None  # (n, E)

    def __post_init__(self) -> None:
        n = len(self.ts)
        _rows("ts", np.asarray(self.ts), n, 1)
        for name in ("user", "room", "room_age_s"):
            _rows(name, np.asarray(getattr(self, name)), n, 1)
        for name in ("room_lucid", "slice_lucid", "context"):
            _rows(name, np.asarray(getattr(self, name)), n, 2)
        for name, values in self.labels.items():
            if name not in LABELS:
                raise RankerError(f"unknown label {name!r}; labels are {', '.join(LABELS)}")
            _rows(f"labels[{name!r}]", np.asarray(values), n, 1)
        _finite("ts", self.ts)
        _finite("room_age_s", self.room_age_s)
        if self.history is not None and len(self.history) != n:
            raise RankerError(f"history has {len(self.history)} rows for {n} events")
        _optional_rows("stats", self.stats, n)
        _optional_rows("content", self.content, n)

    def __len__(self) -> int:
        return len(self.ts)

    def label(self, name: str) -> np.ndarray:
        """Label ``name`` as float64 (n,), zeros when the batch does not carry it."""
        values = self.labels.get(name)
        return np.zeros(len(self)) if values is None else np.asarray(values, dtype=np.float64)

    def take(self, index: np.ndarray | slice) -> EventBatch:
        """The events at ``index`` (a slice or an index array)."""
        return EventBatch(
            ts=self.ts[index],
            user=self.user[index],
            room=self.room[index],
            room_lucid=self.room_lucid[index],
            slice_lucid=self.slice_lucid[index],
            room_age_s=self.room_age_s[index],
            context=self.context[index],
            labels={k: np.asarray(v)[index] for k, v in self.labels.items()},
            history=None if self.history is None else self.history.take(index),
            stats=None if self.stats is None else self.stats[index],
            content=None if self.content is None else self.content[index],
        )

    @property
    def candidates(self) -> Candidates:
        return Candidates(
            room=self.room,
            room_lucid=self.room_lucid,
            slice_lucid=self.slice_lucid,
            room_age_s=self.room_age_s,
            stats=self.stats,
            content=self.content,
        )

    def with_stats(self, stats: np.ndarray) -> EventBatch:
        """The same events with their engagement statistics (n, S) filled in."""
        return replace(self, stats=stats)


@dataclass(frozen=True)
class RankRequest:
    """One user at time ``ts`` and the K candidates to score for them."""

    user: int
    ts: float
    context: np.ndarray  # (C,) ints
    history: History  # one row
    candidates: Candidates

    def __post_init__(self) -> None:
        if len(self.history) != 1:
            raise RankerError(f"a request carries one user's history, got {len(self.history)}")
        if np.ndim(self.context) != 1:
            raise RankerError(f"request context must be (C,), got {np.shape(self.context)}")
        _finite("request ts", np.array([self.ts]))


@dataclass(frozen=True)
class Scores:
    """Per-task probabilities (K, T) in the order of ``tasks``, and the weighted score (K,)."""

    tasks: tuple[str, ...]
    probs: np.ndarray
    score: np.ndarray
