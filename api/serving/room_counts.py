"""Impressions and clicks per room, for the exploration posteriors, read by room key.

A request asks for the counts of every young candidate (up to thousands), so they
are kept in arrays behind a vectorised key index (:class:`ranker.KeyIndex`'s
cuckoo table), keyed by the ranker's int64 room keys that the room cache already
holds: a read is a handful of numpy steps, where a dict lookup per room id cost
0.5-1 ms per thousand candidates.
"""

from __future__ import annotations

import numpy as np

from ranker.key_index import KeyIndex


class RoomCounts:
    """Impressions and clicks by room key; not thread-safe (its owner holds a lock)."""

    def __init__(self) -> None:
        self._index = KeyIndex()
        self._shown = np.zeros(0, dtype=np.float64)
        self._clicks = np.zeros(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._index)

    @classmethod
    def of(cls, keys: np.ndarray, shown: np.ndarray, clicks: np.ndarray) -> RoomCounts:
        """Counts given outright: unique ``keys`` (n,) with their impressions and clicks."""
        counts = cls()
        keys = np.asarray(keys, dtype=np.int64)
        counts._index = KeyIndex(len(keys))
        counts._index.insert(keys, np.arange(len(keys), dtype=np.int64))
        counts._shown = np.asarray(shown, dtype=np.float64).copy()
        counts._clicks = np.asarray(clicks, dtype=np.float64).copy()
        return counts

    def add(self, keys: np.ndarray, clicked: np.ndarray) -> None:
        """One impression per entry of ``keys`` (n,), a click where ``clicked`` (n,)."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return
        unique, inverse = np.unique(keys, return_inverse=True)
        rows = self._index.get(unique)
        new = np.flatnonzero(rows < 0)
        if new.size:
            size = len(self._index)
            rows[new] = np.arange(size, size + new.size)
            self._index.insert(unique[new], rows[new])
            if size + new.size > len(self._shown):
                capacity = max(2 * len(self._shown), size + new.size, 64)
                self._shown = np.resize(self._shown, capacity)
                self._clicks = np.resize(self._clicks, capacity)
                self._shown[size:] = self._clicks[size:] = 0.0
        np.add.at(self._shown, rows[inverse], 1.0)
        np.add.at(self._clicks, rows[inverse], np.asarray(clicked, dtype=np.float64))

    def get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, impressions) of each key (n,), zero for a room never shown."""
        rows = self._index.get(np.asarray(keys, dtype=np.int64))
        seen = rows >= 0
        clicks, shown = np.zeros(len(rows)), np.zeros(len(rows))
        clicks[seen], shown[seen] = self._clicks[rows[seen]], self._shown[rows[seen]]
        return clicks, shown

    def keep(self, keys: np.ndarray) -> None:
        """Forget every room but those of ``keys``."""
        held, rows = self._index.items()
        kept = np.isin(held, np.asarray(keys, dtype=np.int64))
        kept_rows = rows[kept]
        replaced = RoomCounts.of(held[kept], self._shown[kept_rows], self._clicks[kept_rows])
        self._index, self._shown, self._clicks = replaced._index, replaced._shown, replaced._clicks
