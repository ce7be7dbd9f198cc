"""Candidates when a request gives none: live rooms near the user's interest, plus the freshest.

The interest vector (the mean embedding of rooms the user engaged with lately)
is searched against the live rooms' embeddings with a faiss inner-product
index, rebuilt only when the room table changes; on a GPU faiss install the
index lives on the GPU. The freshest live rooms are always added, so a room
that started a minute ago can be ranked (and explored) at once.
"""

from __future__ import annotations

import threading

import faiss
import numpy as np

from api.serving.rooms import RoomTable


class Retriever:
    def __init__(self, nearest: int, freshest: int) -> None:
        self.nearest = nearest
        self.freshest = freshest
        self._table: RoomTable | None = None
        self._index: faiss.Index | None = None
        self._rows: np.ndarray = np.zeros(0, dtype=np.int64)
        self._lock = threading.Lock()

    def _index_for(self, table: RoomTable) -> tuple[faiss.Index | None, np.ndarray]:
        with self._lock:
            if table is not self._table:
                rows = np.flatnonzero(table.live & (np.abs(table.embedding).sum(axis=1) > 0))
                index = None
                if len(rows):
                    index = faiss.IndexFlatIP(table.embedding.shape[1])
                    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
                        index = faiss.index_cpu_to_all_gpus(index)
                    index.add(np.ascontiguousarray(table.embedding[rows]))
                self._table, self._index, self._rows = table, index, rows
            return self._index, self._rows

    def candidates(self, table: RoomTable, interest: np.ndarray | None) -> list[int]:
        """Row indices of the candidate rooms: nearest to ``interest``, then the freshest."""
        live = np.flatnonzero(table.live)
        fresh = live[np.argsort(-table.started_at[live], kind="stable")][: self.freshest]
        found: list[int] = []
        index, rows = self._index_for(table)
        if interest is not None and index is not None:
            k = min(self.nearest, len(rows))
            _, hits = index.search(interest[None, :].astype(np.float32), k)
            found = [int(rows[h]) for h in hits[0] if h >= 0]
        elif interest is None:
            found = [int(i) for i in live[: self.nearest]]
        return list(dict.fromkeys(found + [int(i) for i in fresh]))
