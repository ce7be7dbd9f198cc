"""Keys to dense slot numbers: the row allocator behind tables and the history store.

Slot 0 is reserved and means "no slot of its own" (a table's default row, an
empty history), so a lookup of absent keys can return 0 and feed straight into an
index. Slots 1..capacity are handed out lowest first; a freed slot is reused
before the capacity grows. Owners keep their per-slot arrays ``capacity + 1``
long and call :func:`grown` after each ``add``.
"""

from __future__ import annotations

import numpy as np
import torch

from ranker.key_index import EMPTY, KeyIndex


class KeyedSlots:
    """A :class:`KeyIndex` from keys to slots plus a free list of slots."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.index = KeyIndex(capacity)
        self.slot_key = np.full(capacity + 1, EMPTY, dtype=np.int64)
        self._free = np.arange(capacity, 0, -1, dtype=np.int64)  # a stack, lowest on top
        self._top = capacity

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + self.slot_key.nbytes + self._free.nbytes

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Slot of each key (1-d int64, checked), 0 where the key has none."""
        return self.index.get(keys, missing=0)

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Give each of ``keys`` (unique, absent) a slot; grows the capacity when needed."""
        n = keys.size
        if n > self._top:
            self._grow(n - self._top)
        slots = self._free[self._top - n : self._top][::-1].copy()
        self._top -= n
        self.slot_key[slots] = keys
        self.index.insert(keys, slots)
        return slots

    def remove_slots(self, slots: np.ndarray) -> np.ndarray:
        """Free ``slots`` (in use, unique); returns the keys they held."""
        keys = self.slot_key[slots]
        self.index.remove(keys)
        self.slot_key[slots] = EMPTY
        self._push_free(np.sort(slots)[::-1])
        return keys

    def used(self) -> np.ndarray:
        """Slots in use, ascending."""
        return np.flatnonzero(self.slot_key != EMPTY)

    def _push_free(self, slots: np.ndarray) -> None:
        end = self._top + slots.size
        if end > self._free.size:
            self._free = np.concatenate([self._free, np.empty(end - self._free.size, np.int64)])
        self._free[self._top : end] = slots
        self._top = end

    def _grow(self, at_least: int) -> None:
        new_capacity = max(2 * self.capacity, self.capacity + at_least)
        fresh = np.arange(new_capacity, self.capacity, -1, dtype=np.int64)
        # fresh slots go under the free ones, so freed slots are reused first
        self._free = np.concatenate([fresh, self._free[: self._top]])
        self._top = self._free.size
        self.slot_key = np.concatenate(
            [self.slot_key, np.full(new_capacity - self.capacity, EMPTY, dtype=np.int64)]
        )
        self.capacity = new_capacity

    # --- exact state, for snapshots ----------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        return {"slot_key": self.slot_key.copy(), "free": self._free[: self._top].copy()}

    @classmethod
    def from_state(cls, slot_key: np.ndarray, free: np.ndarray) -> KeyedSlots:
        """Rebuild exactly the allocator that :meth:`state` saw (same slots, same free order)."""
        slots = cls(slot_key.size - 1)
        slots.slot_key = slot_key.astype(np.int64, copy=True)
        slots._free = free.astype(np.int64, copy=True)
        slots._top = free.size
        used = slots.used()
        slots.index = KeyIndex(max(used.size, 1))
        slots.index.insert(slots.slot_key[used], used)
        return slots


def grown(
    array: np.ndarray | torch.Tensor, capacity: int, fill: float = 0
) -> np.ndarray | torch.Tensor:
    """``array`` extended along axis 0 to ``capacity + 1`` rows (itself if long enough)."""
    rows = capacity + 1
    if array.shape[0] >= rows:
        return array
    if isinstance(array, torch.Tensor):
        extra = torch.full((rows - array.shape[0], *array.shape[1:]), fill, dtype=array.dtype)
        return torch.cat([array, extra])
    extra = np.full((rows - array.shape[0], *array.shape[1:]), fill, dtype=array.dtype)
    return np.concatenate([array, extra])
