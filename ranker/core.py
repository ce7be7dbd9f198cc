"""The model and its tables: what the trainer updates and a :class:`RankerServer` holds a copy of.

Both sides score through this one class, so a server that has applied the
trainer's deltas and dense weights computes exactly what the trainer computes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from configs.ranker import RankerSettings
from ranker.errors import RankerError
from ranker.features import Features, SparseStep, TrainStep, UserSide
from ranker.model import RankerModel
from ranker.table import CollisionlessTable, TableDelta
from ranker.token_cache import TokenCache
from ranker.types import Candidates, EventBatch, History, RankRequest, Scores
from ranker.warmup import Warmup, candidate_tokens, warmup_at

# Offsets that give each table its own default-row seed.
_TABLE_SEEDS = {"user": 1, "room": 2, "slice": 3, "item": 4}


def table_names(settings: RankerSettings) -> tuple[str, ...]:
    """Tables a variant needs: user ids and room LUCIDs (history) always, then its candidates'."""
    tokens = candidate_tokens(settings)
    return ("user", "room", *(name for name in ("slice", "item") if name in tokens))


class RankerCore:
    """A ranker variant's dense model, its collisionless tables and the trainer step it is at."""

    def __init__(
        self,
        settings: RankerSettings,
        *,
        trainable: bool = True,
        tables: dict[str, CollisionlessTable] | None = None,
    ) -> None:
        self.settings, self.trainable = settings, trainable
        self.tasks = tuple(settings.tasks.names)
        self.model = RankerModel(settings)
        seed = settings.training.seed
        self.tables = tables or {
            name: CollisionlessTable(
                name, settings.sparse, seed=16 * seed + _TABLE_SEEDS[name], trainable=trainable
            )
            for name in table_names(settings)
        }
        self.features = Features(settings, self.tables)
        self.token_cache = TokenCache(self.model, self.features)
        # step: optimizer steps taken (drives the warmup); version: changes to the state
        # (steps and code migrations), stamped on rows and naming the files published
        self.step = 0
        self.version = 0
        self.retire_item_table()

    @property
    def warmup(self) -> Warmup:
        return warmup_at(self.settings.variant, self.settings.warmup, self.step)

    def retire_item_table(self) -> bool:
        """Free the item-ID table once the warmup has removed its token; True if it did now."""
        if self.warmup.item_token or "item" not in self.tables:
            return False
        del self.tables["item"]  # the features share this dict
        self.token_cache.clear()
        return True

    # --- scoring -----------------------------------------------------------------------

    def logits(
        self, user_side: UserSide, cands: Candidates, step: TrainStep | None = None
    ) -> tuple[torch.Tensor, SparseStep | None]:
        """Logits (B, T) and, for a training step, the sparse rows to update."""
        x, sparse = self.features.inputs(user_side, cands, step)
        return self.model(x), sparse

    def predict(self, batch: EventBatch, history: History) -> np.ndarray:
        """Probabilities (n, T) of the events, without any update."""
        self.model.eval()
        with torch.inference_mode():
            logits, _ = self.logits(event_user_side(batch, history), batch.candidates)
        return torch.sigmoid(logits).numpy()

    def score(self, request: RankRequest, task_weights: Mapping[str, float]) -> Scores:
        """Score K candidates of one request: user side once, candidates in one batched forward.

        Candidate tokens come from the token cache, which a served copy keeps until
        its next update; a trainable core changes at every step, so it starts over.
        """
        weights = self.task_weight_vector(task_weights)
        if len(request.candidates) == 0:
            empty = np.zeros((0, len(self.tasks)), dtype=np.float32)
            return Scores(tasks=self.tasks, probs=empty, score=empty @ weights)
        user_side = UserSide(
            user=np.array([request.user], dtype=np.int64),
            history=request.history,
            context=np.asarray(request.context).reshape(1, -1),
            now=np.array([request.ts], dtype=np.float64),
        )
        if self.trainable:
            self.token_cache.clear()
        if self.model.training:  # eval() walks every module: not on each request
            self.model.eval()
        with torch.inference_mode():
            x, _ = self.features.inputs(user_side, None)
            logits = self.token_cache.logits(request.candidates, x)
        probs = torch.sigmoid(logits).numpy()
        return Scores(tasks=self.tasks, probs=probs, score=probs @ weights)

    def task_weight_vector(self, task_weights: Mapping[str, float]) -> np.ndarray:
        """Weights (T,) in head order; a task without a weight counts 0."""
        unknown = set(task_weights) - set(self.tasks)
        if unknown:
            raise RankerError(
                f"task_weights name {sorted(unknown)}, which this ranker has no head for "
                f"(heads: {', '.join(self.tasks)})"
            )
        return np.array([float(task_weights.get(t, 0.0)) for t in self.tasks], dtype=np.float32)

    # --- sync --------------------------------------------------------------------------

    def sparse_delta(self, since: int) -> dict[str, TableDelta]:
        """Every table's rows changed after version ``since``."""
        return {name: table.delta(since, self.version) for name, table in self.tables.items()}

    def apply_sparse_delta(self, deltas: Mapping[str, TableDelta], step: int) -> None:
        """Apply the trainer's deltas; tables the trainer has retired are retired here too."""
        self.step = max(self.step, step)
        self.retire_item_table()
        self.token_cache.clear()
        for name, delta in deltas.items():
            if name in self.tables:
                self.tables[name].apply_delta(delta)

    def load_dense(self, state: Mapping[str, torch.Tensor], step: int) -> None:
        """Load the trainer's dense weights (exactly; missing or extra names are refused)."""
        self.model.load_state_dict(dict(state), strict=True)
        self.token_cache.clear()
        self.step = max(self.step, step)
        self.retire_item_table()

    def stats(self) -> dict[str, object]:
        warmup = self.warmup
        return {
            "variant": self.settings.variant,
            "step": self.step,
            "version": self.version,
            "stage": warmup.stage,
            "item_drop_prob": warmup.drop_prob,
            "tables": {name: table.stats() for name, table in self.tables.items()},
        }


def event_user_side(batch: EventBatch, history: History) -> UserSide:
    """The user side of each event: its user, history, context and time."""
    return UserSide(
        user=np.asarray(batch.user, dtype=np.int64),
        history=history,
        context=np.asarray(batch.context),
        now=np.asarray(batch.ts, dtype=np.float64),
    )
