"""From numpy inputs to the dense model's tokens: LUCID keys, table lookups, history pooling.

Each table is looked up once per forward pass with every key it serves (a room
table serves the candidates' room LUCIDs and every history entry). In training the
rows come back as a small leaf tensor, so backward produces gradients for exactly
the rows the mini-batch touched, which :meth:`SparseStep.apply` hands to each
table's row optimizer; served lookups index the table's rows directly. Served
scoring looks up the user side here and a candidate's inputs only when the token
cache (:mod:`ranker.token_cache`) has no entry for them (:meth:`candidate_vector`).

A LUCID token is the sum of its L prefix embeddings (or their concatenation, which
the model projects). History is pooled twice with recency weights: in-session
(the last ``session_window_s``, half-life ``session_half_life_s``) and long-term
(half-life ``long_half_life_s``), with ``embedding_bag`` so the (B, H, L, D)
tensor of all history embeddings is never built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn.functional import embedding, embedding_bag

from configs.ranker import RankerSettings
from ranker.engagement import feature_width
from ranker.errors import RankerError
from ranker.keys import LucidKeys
from ranker.model import TokenInputs
from ranker.table import CollisionlessTable
from ranker.types import Candidates, History
from ranker.warmup import candidate_tokens

# Table ids packed into LUCID keys (the user and item tables take id keys as they are).
LUCID_TABLE_IDS = {"room": 1, "slice": 2}


@dataclass(frozen=True)
class UserSide:
    """The user-side inputs of n examples (one per event, or one for a whole request)."""

    user: np.ndarray  # (n,) int64
    history: History
    context: np.ndarray  # (n, C)
    now: np.ndarray  # (n,) event time each example is scored at


@dataclass(frozen=True)
class TrainStep:
    """What a training lookup needs: event time, the version stamp, the item-ID drop."""

    now: float
    version: int
    drop_prob: float
    generator: torch.Generator


@dataclass
class SparseStep:
    """The rows one training forward looked up, as leaf tensors, per table."""

    leaves: list[tuple[CollisionlessTable, np.ndarray, torch.Tensor]] = field(default_factory=list)

    def apply(self, version: int) -> None:
        """One row-optimizer step for every table, from the leaves' gradients."""
        for table, rows, leaf in self.leaves:
            if leaf.grad is not None:
                table.apply_gradients(rows, leaf.grad, version)


class _TableLookup:
    """One lookup of several named key arrays in one table, each indexing into ``weight``."""

    def __init__(
        self,
        table: CollisionlessTable,
        parts: dict[str, np.ndarray],
        step: TrainStep | None,
        sparse: SparseStep | None,
    ) -> None:
        flat = np.concatenate([p.reshape(-1) for p in parts.values()])
        if sparse is None or step is None:  # a served lookup
            index = table.rows(flat)
            self.weight = table.weight
        else:
            rows, index = table.train_rows(flat, step.now, step.version)
            self.weight = table.weight.index_select(0, torch.from_numpy(rows)).requires_grad_()
            sparse.leaves.append((table, rows, self.weight))
        bounds = np.cumsum([p.size for p in parts.values()])[:-1]
        self.index = {
            name: torch.from_numpy(chunk.reshape(p.shape))
            for chunk, (name, p) in zip(np.split(index, bounds), parts.items(), strict=True)
        }

    def embed(self, part: str) -> torch.Tensor:
        return embedding(self.index[part], self.weight)


class Features:
    """Builds :class:`TokenInputs` for one ranker variant from its tables."""

    def __init__(self, settings: RankerSettings, tables: dict[str, CollisionlessTable]) -> None:
        self.settings, self.tables = settings, tables
        lucid = settings.lucid
        self.keys = {
            name: LucidKeys(table_id, lucid.levels, lucid.codes, lucid.keys)
            for name, table_id in LUCID_TABLE_IDS.items()
        }
        self.candidate_names = candidate_tokens(settings)
        self.age_edges = torch.tensor(settings.age_buckets_s, dtype=torch.float64)
        self.context_sizes = np.array([f.size for f in settings.context], dtype=np.int64)
        self.stats_width = feature_width(settings.engagement)

    def lucid_keys(self, table: str, codes: np.ndarray, what: str) -> np.ndarray:
        """Checked ``codes`` (…, L) of ``table`` ("room" or "slice") as keys (…, L)."""
        return self.keys[table](self.keys[table].check(codes, what))

    def inputs(
        self, user_side: UserSide, cands: Candidates | None, step: TrainStep | None = None
    ) -> tuple[TokenInputs, SparseStep | None]:
        """Token inputs of (user side, candidates); ``step`` set means a training lookup.

        ``cands`` None: the user side alone, for served scoring, which computes the
        candidate tokens ahead (:mod:`ranker.token_cache`); ``age`` is then empty.
        """
        sparse = SparseStep() if step is not None else None
        context = self._check_context(user_side.context)
        parts: dict[str, dict[str, np.ndarray]] = {
            "user": {"user": np.asarray(user_side.user)},
            "room": {"history": self.lucid_keys("room", user_side.history.codes, "history codes")},
        }
        if cands is not None:
            for name in ("room", "slice"):
                if name in self.candidate_names:
                    codes = getattr(cands, f"{name}_lucid")
                    parts.setdefault(name, {})["candidate"] = self.lucid_keys(
                        name, codes, f"{name}_lucid"
                    )
            if "item" in self.tables:
                parts["item"] = {"candidate": np.asarray(cands.room)}
        looked = {
            name: _TableLookup(self.tables[name], keys, step, sparse)
            for name, keys in parts.items()
        }
        history, present = self._pool_history(looked["room"], user_side)
        x = TokenInputs(
            user=looked["user"].embed("user"),
            history=history,
            history_present=present,
            context=context,
            age=torch.zeros(0, dtype=torch.int64),
        )
        if cands is None:
            return x, sparse
        x.age = self.age_buckets(cands.room_age_s)
        x.stats, x.content = self.stats(cands), self.content(cands)
        if "room" in self.candidate_names:
            x.room = self._combine(looked["room"].embed("candidate"))
        if "slice" in self.candidate_names:
            x.slice = self._combine(looked["slice"].embed("candidate"))
        if "item" in looked:
            x.item = looked["item"].embed("candidate")
            if step is not None and step.drop_prob > 0:
                x.item_keep = torch.rand(len(cands), generator=step.generator) >= step.drop_prob
        return x, sparse

    def candidate_vector(self, name: str, values: np.ndarray) -> torch.Tensor:
        """Served vectors of one candidate token's input, read from its table.

        ``name`` "room" or "slice": checked LUCID codes (n, L) -> (n, F); "item":
        room keys (n,) -> (n, D).
        """
        table = self.tables[name]
        if name == "item":
            return table.embed(table.rows(values))
        return self._combine(table.embed(table.rows(self.keys[name](values))))

    def stats(self, cands: Candidates) -> torch.Tensor | None:
        """(n, S) engagement statistics, zeros (no engagement known) where not given;
        None when the variant has no statistics token."""
        if "stats" not in self.candidate_names:
            return None
        if cands.stats is None:
            return torch.zeros(len(cands), self.stats_width)
        return torch.from_numpy(np.asarray(cands.stats, dtype=np.float32))

    def content(self, cands: Candidates) -> torch.Tensor | None:
        """(n, E) content embeddings; None when the variant does not read them."""
        if "content" not in self.candidate_names:
            return None
        content = cands.content
        if content is None or np.shape(content)[1] != self.settings.content_dim:
            got = "none" if content is None else f"width {np.shape(content)[1]}"
            raise RankerError(
                f"{self.settings.variant} reads each candidate's content embedding of width "
                f"ranker.content_dim={self.settings.content_dim}; got {got}"
            )
        return torch.from_numpy(np.asarray(content, dtype=np.float32))

    def age_buckets(self, age_s: np.ndarray) -> torch.Tensor:
        """Bucket ids (n,) of room ages in seconds."""
        age = torch.from_numpy(np.asarray(age_s, dtype=np.float64))
        return torch.bucketize(age, self.age_edges)

    def _combine(self, levels: torch.Tensor) -> torch.Tensor:
        """(…, L, D) per-level embeddings -> (…, D) sum or (…, L*D) concatenation."""
        if self.settings.lucid.combine == "sum":
            return levels.sum(dim=-2)
        return levels.flatten(-2)

    def _pool_history(
        self, lookup: _TableLookup, user_side: UserSide
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 2, F) recency-weighted means (session, long-term) and (n, 2) 'has any'."""
        spec = self.settings.history
        history = user_side.history
        age = np.maximum(user_side.now[:, None] - history.ts, 0.0)
        long_w = history.mask * np.exp2(-age / spec.long_half_life_s)
        session_w = (
            history.mask * (age <= spec.session_window_s) * np.exp2(-age / spec.session_half_life_s)
        )
        w = np.stack([session_w, long_w], axis=1)  # (n, 2, H)
        total = w.sum(axis=-1)
        present = total > 0
        w = (w / np.where(present, total, 1.0)[..., None]).astype(np.float32)
        n, length = w.shape[0], w.shape[2]
        levels = self.settings.lucid.levels
        index = lookup.index["history"].permute(0, 2, 1)  # (n, L, H)
        bags = index[:, None].expand(n, 2, levels, length).reshape(-1, length)
        weights = torch.from_numpy(w)[:, :, None].expand(n, 2, levels, length).reshape(-1, length)
        pooled = embedding_bag(bags, lookup.weight, per_sample_weights=weights, mode="sum")
        pooled = self._combine(pooled.view(n, 2, levels, -1))
        return pooled, torch.from_numpy(present)

    def _check_context(self, context: np.ndarray) -> torch.Tensor:
        context = np.asarray(context)
        names = [f.name for f in self.settings.context]
        if context.ndim != 2 or context.shape[1] != len(names):
            raise RankerError(
                f"context must have {len(names)} columns ({', '.join(names)}), "
                f"got shape {context.shape}"
            )
        if not np.issubdtype(context.dtype, np.integer):
            raise RankerError(f"context values must be integers, got {context.dtype}")
        bad = (context < 0) | (context >= self.context_sizes)
        if bad.any():
            column = int(np.flatnonzero(bad.any(axis=0))[0])
            raise RankerError(
                f"context {names[column]!r} must lie in [0, {self.context_sizes[column]}); "
                f"got {int(context[bad.any(axis=1)][0, column])}"
            )
        return torch.from_numpy(context.astype(np.int64, copy=False))
