"""Candidate tokens computed ahead: each one's first-block state, kept per key between updates.

Every candidate token but one depends on its candidate alone: the readout (the
same for all), the room LUCID (its codes), the slice LUCID, the item ID and the
age bucket. So is what the first block makes of it (norm and the fused q|k|v
projection, per token). Serving a request therefore needs, per candidate, only
the interest token (the room LUCID times this user's pooled history) computed
afresh; the rest is read back by key: the full room or slice code, the room key,
the age bucket. A thousand candidates cost a few gathers instead of 9k table
lookups, four projections and the first block's projection of every token.

An entry holds its token ``x0`` (W floats) and q|k|v (3W), and a room LUCID's
entry also its combined LUCID vector (F), which the interest token reads. All
entries share one row space, so a request's static tokens come back as one
gather (B, S, 3W), and the interest token follows them: attention does not
depend on the order of the candidate tokens (no positions), only the readout
must stay first. The values are those the uncached forward computes, on the
same rows, up to float rounding (a matrix kernel may sum in another order for
another batch size, and the softmax sums keys in another order). The owner
clears the cache whenever the model changes (a delta, dense weights, a retired
table); a cache past ``max_entries`` starts over.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ranker.features import Features
from ranker.key_index import KeyIndex
from ranker.keys import LucidKeys
from ranker.model import RankerModel
from ranker.types import Candidates

MAX_ENTRIES = 1 << 18  # 160 floats each by default: 168 MB at most (a delta clears it anyway)


class TokenCache:
    """First-block inputs and projections of a core's candidate tokens, by key."""

    def __init__(
        self, model: RankerModel, features: Features, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.model, self.features, self.max_entries = model, features, max_entries
        lucid = features.settings.lucid
        # the full code as one key, whatever the tables' key mode (unigram keys are not unique)
        self._code_key = LucidKeys(0, lucid.levels, lucid.codes, "prefix")
        self.clear()

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        width = self.model.readout.shape[0]
        self._index: dict[str, KeyIndex] = {}
        self._size = 0
        self._x0 = torch.zeros(0, width)
        self._qkv = torch.zeros(0, 3 * width)
        # room LUCID vectors (other tokens' rows unused)
        self._vector = torch.zeros(0, self.features.settings.lucid_width)

    def first_block(
        self, cands: Candidates, history: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The first block's candidate tokens and their q|k|v, for :meth:`RankerModel.mix`.

        Returns tokens (B, C, W), or the readout alone (B, 1, W) for a one-block
        model, and q|k|v as [(B, S, 3W) static tokens, (B, 1, 3W) interest token].
        ``history``: the request's pooled history (1, 2, F), for the interest token.
        """
        features, model = self.features, self.model
        n = len(cands)
        if self._size + 4 * n > self.max_entries:
            self.clear()
        inputs: dict[str, tuple[np.ndarray, Callable[[np.ndarray], torch.Tensor]]] = {
            "readout": (np.zeros(n, dtype=np.int64), lambda at: torch.zeros(len(at), 0)),
        }
        for name in ("room", "slice"):
            if name in features.candidate_names:
                codes = features.keys[name].check(getattr(cands, f"{name}_lucid"), f"{name}_lucid")
                inputs[name] = (
                    self._code_key(codes)[:, -1],
                    lambda at, name=name, codes=codes: features.candidate_vector(name, codes[at]),
                )
        buckets = features.age_buckets(cands.room_age_s)
        inputs["age"] = (buckets.numpy(), lambda at: buckets[at])
        if "item" in features.tables:
            room = np.asarray(cands.room, dtype=np.int64)
            inputs["item"] = (room, lambda at: features.candidate_vector("item", room[at]))
        static = [name for name in model.candidate_names if name in inputs]  # readout first
        rows = np.stack([self._rows(name, *inputs[name]) for name in static], axis=1)
        flat = torch.from_numpy(rows.reshape(-1))
        qkv = [self._qkv.index_select(0, flat).view(n, len(static), -1)]
        tokens = []
        if "interest" in model.candidate_names and "room" in inputs:
            vector = self._vector.index_select(0, torch.from_numpy(rows[:, static.index("room")]))
            tokens.append(model.interest_token(vector, history)[:, None])
            qkv.append(model.blocks[0].project(tokens[-1]))
        if len(model.blocks) == 1:  # only the readout's token is read: one row for all
            return self._x0[int(rows[0, 0])].expand(n, 1, -1), qkv
        x0 = self._x0.index_select(0, flat).view(n, len(static), -1)
        return torch.cat([x0, *tokens], dim=1), [torch.cat(qkv, dim=1)]

    def _rows(
        self, name: str, keys: np.ndarray, value_at: Callable[[np.ndarray], torch.Tensor]
    ) -> np.ndarray:
        """Entry rows (n,) of ``keys``; a key without one gets it from its first candidate."""
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = KeyIndex()
        rows = index.get(keys)
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            new, first = np.unique(keys[missing], return_index=True)
            value = value_at(missing[first])
            token = self.model.candidate_token(name, value)
            start, end = self._size, self._size + len(new)
            cap = self.max_entries + 1
            self._x0 = _put(self._x0, start, token, cap)
            self._qkv = _put(self._qkv, start, self.model.blocks[0].project(token), cap)
            if name == "room":
                self._vector = _put(self._vector, start, value, cap)
            index.insert(new, np.arange(start, end, dtype=np.int64))
            self._size = end
            rows = index.get(keys)
        return rows


def _put(values: torch.Tensor, start: int, rows: torch.Tensor, cap: int) -> torch.Tensor:
    """``values`` with ``rows`` written from row ``start``. Full, it doubles (up to ``cap``
    rows unless more are needed), so a stream of misses copies O(n) in all."""
    end = start + len(rows)
    if end > values.shape[0]:
        grown = torch.zeros(max(end, min(2 * values.shape[0], cap)), values.shape[1])
        grown[: values.shape[0]] = values
        values = grown
    values[start:end] = rows
    return values
