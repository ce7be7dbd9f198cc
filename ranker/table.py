"""A collisionless embedding table (Monolith's idea): every admitted int64 key has a row of its own.

No key is hashed into a fixed-size space, so two keys never share a row. Rows live
in one growable tensor; row 0 is the table's trained *default row*, which every key
reads until it has earned a row of its own:

- **Frequency filter.** A key gets its row at its ``min_count``-th training
  occurrence (counted exactly, per key, in a pending index); until then it reads
  the default row, and the default row's gradient is the sum over those lookups.
- **Expiry.** Rows untouched for ``ttl_s`` in event time are evicted by
  :meth:`evict`; their slots are reused. Pending counts expire the same way.
- **Sparse optimizer.** A row optimizer (Adagrad by default) keeps its state in a
  tensor beside the rows and updates only the rows a step touched.
- **Versions.** Each row records the trainer step that last changed it, so
  :meth:`delta` can export what changed since a version; evictions are logged
  for the same purpose.

Lookups and inserts are vectorised (numpy cuckoo index, no per-key Python loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from configs.ranker import SparseSettings
from ranker.errors import RankerError
from ranker.key_index import check_keys
from ranker.optim import row_optimizer
from ranker.slots import KeyedSlots, grown


@dataclass(frozen=True)
class TableDelta:
    """The rows of a table changed in versions (since, version], and the keys evicted then.

    Applying it to a copy that is at version ``since`` (or later) brings that copy's
    rows to exactly the exporter's values.
    """

    keys: np.ndarray  # (n,) int64
    values: torch.Tensor  # (n, dim) float32
    default: torch.Tensor  # (dim,) the default row
    evicted: np.ndarray  # (m,) int64
    since: int
    version: int


class CollisionlessTable:
    """int64 keys -> rows of their own; see the module docstring for the rules."""

    def __init__(
        self, name: str, spec: SparseSettings, *, seed: int = 0, trainable: bool = True
    ) -> None:
        self.name, self.spec, self.dim, self.trainable = name, spec, spec.dim, trainable
        self._optimizer = row_optimizer(spec)
        capacity = spec.initial_capacity
        self.slots = KeyedSlots(capacity)
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.zeros(capacity + 1, self.dim)
        self.weight[0] = torch.randn(self.dim, generator=generator) * spec.init_std
        width = self._optimizer.state_width(self.dim) if trainable else 0
        self.state = torch.full((capacity + 1, width), self._optimizer.initial_state())
        self.seen = np.full(capacity + 1, -np.inf)
        self.version = np.zeros(capacity + 1, dtype=np.int64)
        self._pending = KeyedSlots(capacity)
        self._pending_count = np.zeros(capacity + 1, dtype=np.int64)
        self._pending_seen = np.zeros(capacity + 1)
        self.evictions = 0
        self.filtered_lookups = 0
        self._log: list[tuple[int, np.ndarray]] = []  # (version, evicted keys)
        self._log_floor = 0

    def __len__(self) -> int:
        return len(self.slots)

    # --- lookups ---------------------------------------------------------------------

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Read-only lookup: the row of each key (any shape), 0 (default row) where it has none."""
        rows = self.slots.find(check_keys(keys))
        self.filtered_lookups += int(np.count_nonzero(rows == 0))
        return rows.reshape(np.shape(keys))

    def embed(self, rows: np.ndarray) -> torch.Tensor:
        """The rows' vectors (…, dim), without gradient.

        A numpy gather: as fast as ``nn.Embedding`` on one thread, and it does not wake
        torch's thread pool between the numpy key lookup and the gather (on a busy
        2-core machine that wake-up alone cost milliseconds per call).
        """
        return torch.from_numpy(self.weight.numpy().take(rows, axis=0))

    def lookup(self, keys: np.ndarray) -> torch.Tensor:
        """Vectors (…, dim) of ``keys`` (any shape): own row, or the default row."""
        return self.embed(self.rows(keys))

    def train_rows(
        self, keys: np.ndarray, now: float, version: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training lookup: counts occurrences, admits keys that reach ``min_count``, touches rows.

        Returns the unique rows involved (default row included) and, for each key, the
        position of its row in them (shape of ``keys``), ready for a small leaf tensor.
        """
        flat = check_keys(keys)
        uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
        rows = self.slots.find(uniq)
        absent = np.flatnonzero(rows == 0)
        if absent.size:
            ready = absent[self._count(uniq[absent], counts[absent], now)]
            if ready.size:
                rows[ready] = self._allocate(uniq[ready], now, version)
        self.filtered_lookups += int(counts[rows == 0].sum())
        self.seen[rows] = np.maximum(self.seen[rows], now)
        table_rows, row_of_uniq = np.unique(rows, return_inverse=True)
        return table_rows, row_of_uniq[inverse].reshape(np.shape(keys))

    def _count(self, keys: np.ndarray, counts: np.ndarray, now: float) -> np.ndarray:
        """Add occurrences of absent ``keys`` (unique); mask of those now reaching min_count."""
        if self.spec.min_count <= 1:
            return np.ones(keys.size, dtype=bool)
        slots = self._pending.find(keys)
        new = slots == 0
        if new.any():
            slots[new] = self._pending.add(keys[new])
            capacity = self._pending.capacity
            self._pending_count = grown(self._pending_count, capacity)
            self._pending_seen = grown(self._pending_seen, capacity)
            self._pending_count[slots[new]] = 0
        self._pending_count[slots] += counts
        self._pending_seen[slots] = now
        ready = self._pending_count[slots] >= self.spec.min_count
        if ready.any():
            self._pending.remove_slots(slots[ready])
        return ready

    def _allocate(self, keys: np.ndarray, now: float, version: int) -> np.ndarray:
        """Rows for new ``keys`` (unique, absent), starting as copies of the default row."""
        rows = self.slots.add(keys)
        capacity = self.slots.capacity
        if self.weight.shape[0] <= capacity:
            self.weight = grown(self.weight, capacity)
            self.state = grown(self.state, capacity, self._optimizer.initial_state())
            self.seen = grown(self.seen, capacity, -np.inf)
            self.version = grown(self.version, capacity)
        index = torch.from_numpy(rows)
        self.weight.index_copy_(0, index, self.weight[0].repeat(rows.size, 1))
        self.state.index_fill_(0, index, self._optimizer.initial_state())
        self.seen[rows] = now
        self.version[rows] = version
        return rows

    # --- updates -----------------------------------------------------------------------

    def apply_gradients(self, rows: np.ndarray, grad: torch.Tensor, version: int) -> None:
        """One row-optimizer step on the unique ``rows`` (those :meth:`train_rows` returned)."""
        if not self.trainable:
            raise RankerError(f"table {self.name!r} is a served copy and cannot be trained")
        self._optimizer.step(self.weight, self.state, torch.from_numpy(rows), grad)
        self.version[rows] = version

    def assign(
        self, keys: np.ndarray, values: torch.Tensor, version: int, now: float = -np.inf
    ) -> np.ndarray:
        """Set the rows of ``keys`` (unique) to ``values``, allocating rows for new keys.

        Optimizer state of the assigned rows restarts; used by code migration and by
        delta application. Returns the rows.
        """
        keys = check_keys(keys)
        if values.shape != (keys.size, self.dim):
            raise RankerError(
                f"table {self.name!r}: values must be ({keys.size}, {self.dim}), "
                f"got {tuple(values.shape)}"
            )
        rows = self.slots.find(keys)
        new = rows == 0
        if new.any():
            rows[new] = self._allocate(keys[new], now, version)
        index = torch.from_numpy(rows)
        self.weight.index_copy_(0, index, values.to(self.weight.dtype))
        self.state.index_fill_(0, index, self._optimizer.initial_state())
        self.version[rows] = version
        self.seen[rows] = np.maximum(self.seen[rows], now)
        return rows

    def evict(self, now: float, version: int) -> int:
        """Evict rows (and pending counts) untouched since ``now - ttl_s``; returns rows evicted."""
        cutoff = now - self.spec.ttl_s
        used = self.slots.used()
        old = used[self.seen[used] < cutoff]
        if old.size:
            self._log.append((version, self.slots.remove_slots(old)))
            self.evictions += int(old.size)
        pending = self._pending.used()
        stale = pending[self._pending_seen[pending] < cutoff]
        if stale.size:
            self._pending.remove_slots(stale)
        return int(old.size)

    # --- deltas ------------------------------------------------------------------------

    def delta(self, since: int, version: int) -> TableDelta:
        """Rows changed after version ``since``, and keys evicted since.

        The eviction log before ``since`` is dropped: a later call must not ask for an
        earlier version (take a snapshot instead).
        """
        if since < self._log_floor:
            raise RankerError(
                f"table {self.name!r}: a delta since version {since} was asked for after one "
                f"since {self._log_floor}; its evictions are gone, take a snapshot instead"
            )
        used = self.slots.used()
        changed = used[self.version[used] > since]
        self._log = [(v, keys) for v, keys in self._log if v > since]
        self._log_floor = since
        evicted = [keys for _, keys in self._log]
        return TableDelta(
            keys=self.slots.slot_key[changed].copy(),
            values=self.weight[torch.from_numpy(changed)].clone(),
            default=self.weight[0].clone(),
            evicted=np.concatenate(evicted) if evicted else np.empty(0, dtype=np.int64),
            since=since,
            version=version,
        )

    def apply_delta(self, delta: TableDelta) -> None:
        """Bring this copy's rows to the exporter's: evictions first, then the changed rows."""
        if delta.evicted.size:
            rows = self.slots.find(check_keys(delta.evicted))
            self.slots.remove_slots(np.unique(rows[rows > 0]))
        self.assign(delta.keys, delta.values, delta.version)
        self.weight[0] = delta.default

    # --- snapshots ---------------------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything that makes this table, exactly (rows, state, allocator, counts, log)."""
        rows = self.slots.capacity + 1
        log_keys = [keys for _, keys in self._log]
        log_versions = [np.full(keys.size, v, dtype=np.int64) for v, keys in self._log]
        arrays = {
            **{f"slots.{k}": v for k, v in self.slots.state().items()},
            **{f"pending.{k}": v for k, v in self._pending.state().items()},
            "pending.count": self._pending_count[: self._pending.capacity + 1],
            "pending.seen": self._pending_seen[: self._pending.capacity + 1],
            "seen": self.seen[:rows],
            "version": self.version[:rows],
            "log.keys": np.concatenate(log_keys) if log_keys else np.empty(0, np.int64),
            "log.versions": np.concatenate(log_versions) if log_versions else np.empty(0, np.int64),
            "counters": np.array([self.evictions, self.filtered_lookups, self._log_floor]),
        }
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        return tensors | {"weight": self.weight[:rows].clone(), "state": self.state[:rows].clone()}

    @classmethod
    def from_state_tensors(
        cls, name: str, spec: SparseSettings, tensors: dict[str, torch.Tensor], *, trainable: bool
    ) -> CollisionlessTable:
        """The table :meth:`state_tensors` saved; a served copy (not trainable) drops the state."""
        weight = tensors["weight"]
        if weight.ndim != 2 or weight.shape[1] != spec.dim:
            raise RankerError(
                f"table {name!r}: saved rows are {tuple(weight.shape)}, settings say dim {spec.dim}"
            )
        table = cls(name, spec, trainable=trainable)
        a = {k: v.numpy() for k, v in tensors.items() if k not in ("weight", "state")}
        table.slots = KeyedSlots.from_state(a["slots.slot_key"], a["slots.free"])
        table._pending = KeyedSlots.from_state(a["pending.slot_key"], a["pending.free"])
        table._pending_count = a["pending.count"].copy()
        table._pending_seen = a["pending.seen"].copy()
        table.seen, table.version = a["seen"].copy(), a["version"].copy()
        table.weight = weight.clone()
        if trainable:
            table.state = tensors["state"].clone()
        else:
            table.state = torch.zeros(weight.shape[0], 0)
        versions, keys = a["log.versions"], a["log.keys"]
        table._log = [(int(v), keys[versions == v].copy()) for v in np.unique(versions)]
        table.evictions, table.filtered_lookups, table._log_floor = (int(x) for x in a["counters"])
        return table

    # --- stats -------------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        arrays = (self.seen, self.version, self._pending_count, self._pending_seen)
        return (
            self.weight.nbytes
            + self.state.nbytes
            + sum(a.nbytes for a in arrays)
            + self.slots.nbytes
            + self._pending.nbytes
        )

    def stats(self) -> dict[str, int]:
        """Rows in use, capacity, keys still filtered, evictions, filtered lookups, bytes."""
        return {
            "rows": len(self.slots),
            "capacity": self.slots.capacity,
            "pending": len(self._pending),
            "evictions": self.evictions,
            "filtered_lookups": self.filtered_lookups,
            "bytes": self.nbytes,
        }
