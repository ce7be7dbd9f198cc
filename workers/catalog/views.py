"""What the catalog hands out: plain frozen records, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SliceRecord:
    """A slice the encoder has embedded; ``lucid`` is None while no codebook is active."""

    slice_id: str
    room_id: str
    ts: float
    embedding: np.ndarray
    lucid: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SliceView:
    slice_id: str
    room_id: str
    ts: float
    status: str  # encoded | failed
    failure_reason: str | None
    lucid: tuple[int, ...] | None  # under the active codebook; None = pending or failed
    codebook_version: str | None


@dataclass(frozen=True)
class RoomView:
    room_id: str
    status: str  # live | ended
    started_at: float
    ended_at: float | None
    last_slice_at: float
    n_slices: int
    updated_at: float
    embedding: np.ndarray | None  # mean of the slice embeddings, renormalised
    room_lucid: tuple[int, ...] | None  # under codebook_version; None = codes pending
    latest_slice_lucid: tuple[int, ...] | None
    codebook_version: str | None


@dataclass(frozen=True)
class CodebookRecord:
    version: str
    path: str
    levels: int
    codes: int
    dim: int
    parent_version: str | None
    created_at: float
    activated_at: float | None


@dataclass(frozen=True)
class LogEntry:
    """One event of the event log: its position, id, JSON, and when the API accepted it."""

    position: int
    event_id: str
    payload: str
    appended_at: float


@dataclass(frozen=True)
class DeadLetter:
    """A logged event the trainer could not train, and why."""

    position: int
    event_id: str
    reason: str
    payload: str
    created_at: float = 0.0
