"""Candidate tokens computed ahead: each one's first-block state, kept per key between updates.

Most candidate tokens depend on a key of their candidate alone: the readout (the
same for all), the room LUCID (its codes), the slice LUCID, the item ID and the
age bucket. So is what the first block makes of them (norm and the fused q|k|v
projection, per token). Serving a request therefore computes afresh, per
candidate, only the tokens that change between requests: interest (the room
LUCID times this user's pooled history), the engagement statistics (every event
moves them) and the content embedding (every slice moves it); the rest is read
back by key: the full room or slice code, the room key, the age bucket. A
thousand candidates cost a few gathers instead of 9k table lookups, four
projections and the first block's projection of every token.

What an entry keeps depends on the depth. A one-block model keeps, per token,
the readout's score against it and its value (:class:`ranker.readout.ReadoutScorer`,
H + W floats); a deeper one keeps the token ``x0`` and its first-block q|k|v (4W,
:class:`FirstBlockScorer`), readout included. A room LUCID's entry also holds its
combined LUCID vector (F), which the interest token reads. All entries share one
row space, so a request's static tokens come back as one gather per array,
token-major (C, B, …); the per-request tokens join them after: attention does not
depend on the order of the candidate tokens (no positions). The values are those
the uncached forward computes, on the same rows, up to float rounding (a matrix
kernel may sum in another order for another batch size, and the softmax sums keys
in another order); tests compare the two. The owner clears the cache whenever the
model changes (a delta, dense weights, a retired table); a cache past
``max_entries`` starts over.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ranker.features import Features
from ranker.key_index import KeyIndex
from ranker.keys import LucidKeys
from ranker.model import RankerModel, TokenInputs
from ranker.readout import ReadoutScorer
from ranker.types import Candidates

# by default (one block, W=32) an entry is 66 floats: 69 MB at most, and a delta clears it
MAX_ENTRIES = 1 << 18


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
        """Drop every entry; the owner calls this whenever the model changes."""
        self._index: dict[str, KeyIndex] = {}
        self._size = 0
        model = self.model
        self._scorer = ReadoutScorer(model) if len(model.blocks) == 1 else FirstBlockScorer(model)
        self._columns = [torch.zeros(0, width) for width in self._scorer.widths]
        # room LUCID vectors (other tokens' rows unused)
        self._vector = torch.zeros(0, self.features.settings.lucid_width)

    def logits(self, cands: Candidates, x: TokenInputs) -> torch.Tensor:
        """Logits (B, T) of a request: ``x`` holds its user side (:meth:`Features.inputs`
        without candidates), the candidates' static tokens come from the cache."""
        features, model = self.features, self.model
        n = len(cands)
        if self._size + 4 * n > self.max_entries:
            self.clear()
        inputs: dict[str, tuple[np.ndarray, Callable[[np.ndarray], torch.Tensor]]] = {}
        if self._scorer.caches_readout:
            inputs["readout"] = (np.zeros(n, dtype=np.int64), lambda at: torch.zeros(len(at), 0))
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
        rows = np.stack([self._rows(name, *inputs[name]) for name in static])  # (C, B)
        flat = torch.from_numpy(rows.reshape(-1))
        cached = [column.index_select(0, flat).view(len(static), n, -1) for column in self._columns]
        return self._scorer.logits(
            model.embed_user_side(x), cached, self._dynamic(cands, x, static, rows)
        )

    def _dynamic(
        self, cands: Candidates, x: TokenInputs, static: list[str], rows: np.ndarray
    ) -> list[torch.Tensor]:
        """The tokens (B, W) computed afresh per request: interest (this user's history),
        statistics (they change with every event) and content (it changes with every slice)."""
        model, features = self.model, self.features
        stats, content = features.stats(cands), features.content(cands)
        tokens = []
        if "interest" in model.candidate_names:
            if "room" in static:
                base = self._vector.index_select(0, torch.from_numpy(rows[static.index("room")]))
            else:
                base = model.content_code(content)
            tokens.append(model.interest_token(base, x.history))
        if stats is not None:
            tokens.append(model.candidate_token("stats", stats))
        if content is not None:
            tokens.append(model.candidate_token("content", content))
        return tokens

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
            self._columns = [
                _put(column, start, part, cap)
                for column, part in zip(self._columns, self._scorer.entries(token), strict=True)
            ]
            if name == "room":
                self._vector = _put(self._vector, start, value, cap)
            index.insert(new, np.arange(start, end, dtype=np.int64))
            self._size = end
            rows = index.get(keys)
        return rows


class FirstBlockScorer:
    """Cache entries of a model with more blocks: each token and its first-block q|k|v."""

    caches_readout = True

    def __init__(self, model: RankerModel) -> None:
        self.model = model
        self.widths = (4 * model.readout.shape[0],)

    def entries(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        return [torch.cat([tokens, self.model.blocks[0].project(tokens)], dim=1)]

    def logits(
        self, user: torch.Tensor, cached: list[torch.Tensor], dynamic: list[torch.Tensor]
    ) -> torch.Tensor:
        """Logits (B, T) from the user-side tokens (1, U, W), the cached entries gathered
        token-major (C, B, 4W), readout first, and the per-request tokens, each (B, W)."""
        width = self.model.readout.shape[0]
        entries = cached[0].transpose(0, 1)  # (B, C, 4W)
        cand, qkv = entries[..., :width], entries[..., width:]
        if dynamic:
            fresh = torch.stack(dynamic, dim=1)  # (B, D, W)
            cand = torch.cat([cand, fresh], dim=1)
            qkv = torch.cat([qkv, self.model.blocks[0].project(fresh)], dim=1)
        return self.model.mix(user, cand.contiguous(), qkv_cand=qkv.contiguous())


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
