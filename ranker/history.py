"""Per-user history: the LUCIDs and times of the last H rooms each user engaged with.

The trainer appends the engagements of the stream it consumes (after a mini-batch's
step, so an example never sees its own event), and the API appends events posted
for a user, so that the user's history tokens change within a second. Reads come
back as arrays, most recent first, ready for the ranker's recency-weighted pooling.

Each user has a ring of H entries in one array (users map to rows through the same
vectorised index the embedding tables use), so appending and reading a batch of
users costs a handful of numpy operations, whatever the batch holds.
"""

from __future__ import annotations

import numpy as np

from ranker.errors import RankerError
from ranker.key_index import check_keys
from ranker.slots import KeyedSlots, grown
from ranker.types import History


class HistoryStore:
    """Bounded, in-memory per-user histories (``length`` entries of ``levels`` codes)."""

    def __init__(self, length: int, levels: int, capacity: int = 1024) -> None:
        self.length, self.levels = length, levels
        self._slots = KeyedSlots(capacity)
        self._codes = np.zeros((capacity + 1, length, levels), dtype=np.int32)
        self._ts = np.zeros((capacity + 1, length))
        self._count = np.zeros(capacity + 1, dtype=np.int64)  # entries ever appended
        self._last = np.full(capacity + 1, -np.inf)

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def nbytes(self) -> int:
        arrays = (self._codes, self._ts, self._count, self._last)
        return sum(a.nbytes for a in arrays) + self._slots.nbytes

    def append(self, users: np.ndarray, codes: np.ndarray, ts: np.ndarray) -> None:
        """Record engagements: ``users`` (n,), room LUCIDs ``codes`` (n, L), times ``ts`` (n,).

        Entries of one user are kept in time order (ties in input order); only the
        newest ``length`` per user survive.
        """
        users = check_keys(users)
        codes, ts = np.asarray(codes), np.asarray(ts, dtype=np.float64)
        if codes.shape != (users.size, self.levels) or ts.shape != (users.size,):
            raise RankerError(
                f"history append needs users (n,), codes (n, {self.levels}) and ts (n,); "
                f"got {users.shape}, {codes.shape}, {ts.shape}"
            )
        if users.size == 0:
            return
        slots = self._slots_of(users)
        order = np.lexsort((ts, slots))  # by user slot, then time
        slots, codes, ts = slots[order], codes[order], ts[order]
        starts = np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]])
        sizes = np.diff(np.r_[starts, slots.size])
        users_at, last_ts = slots[starts], ts[starts + sizes - 1]
        rank = np.arange(slots.size) - np.repeat(starts, sizes)
        keep = rank >= np.repeat(sizes, sizes) - self.length  # the newest `length` per user
        slots, rank = slots[keep], rank[keep]
        position = (self._count[slots] + rank) % self.length
        self._codes[slots, position] = codes[keep]
        self._ts[slots, position] = ts[keep]
        self._count[users_at] += sizes
        self._last[users_at] = np.maximum(self._last[users_at], last_ts)

    def read(self, users: np.ndarray) -> History:
        """Histories of ``users`` (n,): codes (n, H, L), ts (n, H), mask (n, H), newest first."""
        slots = self._slots.find(check_keys(users))
        count = self._count[slots]
        back = np.arange(self.length)
        position = (count[:, None] - 1 - back) % self.length
        rows = slots[:, None]
        return History(
            codes=self._codes[rows, position],
            ts=self._ts[rows, position],
            mask=back < np.minimum(count, self.length)[:, None],
        )

    def forget_before(self, ts: float) -> int:
        """Drop users whose last engagement is older than ``ts``; returns how many."""
        used = self._slots.used()
        old = used[self._last[used] < ts]
        if old.size:
            self._slots.remove_slots(old)
        return int(old.size)

    def _slots_of(self, users: np.ndarray) -> np.ndarray:
        slots = self._slots.find(users)
        new = slots == 0
        if new.any():
            fresh = np.unique(users[new])
            added = self._slots.add(fresh)
            capacity = self._slots.capacity
            self._codes = grown(self._codes, capacity)
            self._ts = grown(self._ts, capacity)
            self._count = grown(self._count, capacity)
            self._last = grown(self._last, capacity, -np.inf)
            self._count[added] = 0
            self._last[added] = -np.inf
            slots[new] = added[np.searchsorted(fresh, users[new])]
        return slots

    # --- exact state, for snapshots ----------------------------------------------------

    def state_arrays(self) -> dict[str, np.ndarray]:
        rows = self._slots.capacity + 1
        arrays = {"codes": self._codes, "ts": self._ts, "count": self._count, "last": self._last}
        return {k: v[:rows] for k, v in arrays.items()} | {
            f"slots.{k}": v for k, v in self._slots.state().items()
        }

    @classmethod
    def from_state_arrays(cls, arrays: dict[str, np.ndarray]) -> HistoryStore:
        """The store :meth:`state_arrays` saved."""
        _, length, levels = arrays["codes"].shape
        store = cls(length, levels)
        store._slots = KeyedSlots.from_state(arrays["slots.slot_key"], arrays["slots.free"])
        store._codes = arrays["codes"].copy()
        store._ts, store._count = arrays["ts"].copy(), arrays["count"].copy()
        store._last = arrays["last"].copy()
        return store
