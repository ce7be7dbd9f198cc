"""The dense part of the ranker: token projections, a small transformer over the token set, heads.

Late fusion: every feature is its own token. User-side tokens (user id, in-session
history, long-term history, context) and candidate-side tokens (readout, room
LUCID, slice LUCID, interest, room age, item ID) go through one transformer with one rule:
user-side tokens attend only to user-side tokens, candidate-side tokens attend to
everything. The user side therefore does not depend on the candidate, so a request
computes it once (batch 1) and its keys and values are broadcast to all K
candidates, while training runs the same function with one user row per example.
The readout token's last state feeds the multi-task head (one logit per task).

The *interest* token is the one explicit cross feature: the candidate's room LUCID
times (elementwise) the pooled in-session and long-term history, projected. Without
it the model must discover "does this room match what the user watched" through two
hops of attention; with it the synthetic stream's held-out AUC goes from 0.76 (what
room quality alone gives) to 0.85 in the same number of events.

Shapes (W = backbone width, D = table dim, F = D, or L*D with ``combine: concat``)::

    user (Bu, D)  history (Bu, 2, F)  history_present (Bu, 2)  context (Bu, C)
    room, slice (B, F)  age (B,) bucket ids  item (B, D)  item_keep (B,)   with Bu in {1, B}
    -> logits (B, T)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from configs.ranker import RankerSettings
from ranker.warmup import candidate_tokens

USER_TOKENS = ("user", "session", "long", "context")


@dataclass
class TokenInputs:
    """What the dense model reads; the sparse lookups have already happened."""

    user: torch.Tensor
    history: torch.Tensor
    history_present: torch.Tensor
    context: torch.Tensor
    age: torch.Tensor
    room: torch.Tensor | None = None
    slice: torch.Tensor | None = None
    item: torch.Tensor | None = None
    item_keep: torch.Tensor | None = None  # None: the item token is seen by every example


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Softmax attention (N, h, Tq, d) over a handful of keys; ``mask`` True = visible.

    Written out because our sequences are ~10 tokens long and there are thousands of
    them: torch's fused CPU attention and softmax kernels are 2-4x slower at that shape
    than two batched matmuls and a softmax made of elementwise ops.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = (scores - scores.amax(dim=-1, keepdim=True)).exp()
    return torch.matmul(weights / weights.sum(dim=-1, keepdim=True), v)


class Block(nn.Module):
    """Pre-norm transformer block over (user tokens, candidate tokens) with the late-fusion mask."""

    def __init__(self, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, ffn_mult * width), nn.GELU(), nn.Linear(ffn_mult * width, width)
        )

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n, t, _ = x.shape
        return self.qkv(self.norm1(x)).view(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        a = attention(q, k, v, mask)
        n, h, t, d = a.shape
        return self.out(a.transpose(1, 2).reshape(n, t, h * d))

    def forward(
        self, user: torch.Tensor, cand: torch.Tensor, mask: torch.Tensor | None, last: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        qu, ku, vu = self._qkv(user)
        qc, kc, vc = self._qkv(cand)
        b = cand.shape[0]
        k = torch.cat([ku.expand(b, -1, -1, -1), kc], dim=2)
        v = torch.cat([vu.expand(b, -1, -1, -1), vc], dim=2)
        if last:  # only the readout's output is used after the last block
            qc, cand = qc[:, :, :1], cand[:, :1]
        cand = cand + self._attend(qc, k, v, mask)
        cand = cand + self.ffn(self.norm2(cand))
        if not last:
            user = user + self._attend(qu, ku, vu, None)
            user = user + self.ffn(self.norm2(user))
        return user, cand


class RankerModel(nn.Module):
    """Token projections, the transformer and the multi-task head of one ranker variant."""

    def __init__(self, settings: RankerSettings) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.training.seed)
            self._build(settings)

    def _build(self, settings: RankerSettings) -> None:
        width, dim = settings.backbone.width, settings.sparse.dim
        lucid = dim * (settings.lucid.levels if settings.lucid.combine == "concat" else 1)
        self.candidate_names = ("readout", *candidate_tokens(settings.variant))
        names = USER_TOKENS + self.candidate_names
        self.token_type = {name: i for i, name in enumerate(names)}
        self.type_embedding = nn.Parameter(0.02 * torch.randn(len(names), width))
        self.readout = nn.Parameter(0.02 * torch.randn(width))
        self.user_proj = nn.Linear(dim, width)
        self.history_proj = nn.ModuleList([nn.Linear(lucid, width) for _ in range(2)])
        self.history_empty = nn.Parameter(0.02 * torch.randn(2, width))
        self.context = nn.ModuleList(nn.Embedding(f.size, width) for f in settings.context)
        self.age = nn.Embedding(len(settings.age_buckets_s) + 1, width)
        self.proj = nn.ModuleDict()
        for name in self.candidate_names:
            if name in ("room", "slice"):
                self.proj[name] = nn.Linear(lucid, width)
            elif name == "interest":
                self.proj[name] = nn.Linear(2 * lucid, width)
            elif name == "item":
                self.proj[name] = nn.Linear(dim, width)
        backbone = settings.backbone
        self.blocks = nn.ModuleList(
            Block(width, backbone.heads, backbone.ffn_mult) for _ in range(backbone.layers)
        )
        self.head = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, width),
            nn.GELU(),
            nn.Linear(width, len(settings.tasks.names)),
        )

    def _types(self, names: tuple[str, ...]) -> torch.Tensor:
        return self.type_embedding[[self.token_type[n] for n in names]]

    def user_tokens(self, x: TokenInputs) -> torch.Tensor:
        """(Bu, 4, W): user id, in-session history, long-term history, context."""
        history = torch.stack(
            [proj(x.history[:, i]) for i, proj in enumerate(self.history_proj)], dim=1
        )
        history = torch.where(x.history_present[..., None], history, self.history_empty)
        context = sum(
            (emb(x.context[:, i]) for i, emb in enumerate(self.context)),
            torch.zeros(x.user.shape[0], self.readout.shape[0]),
        )
        tokens = torch.cat([self.user_proj(x.user)[:, None], history, context[:, None]], dim=1)
        return tokens + self._types(USER_TOKENS)

    def candidate_tokens(self, x: TokenInputs) -> tuple[torch.Tensor, tuple[str, ...]]:
        """(B, C, W): the readout and the candidate's tokens, and their names."""
        b = x.age.shape[0]
        tokens = {"readout": self.readout.expand(b, -1), "age": self.age(x.age)}
        for name in ("room", "slice", "item"):
            value = getattr(x, name)
            if value is not None and name in self.proj:
                tokens[name] = self.proj[name](value)
        if "interest" in self.proj and x.room is not None:
            # (B, 2, F): the candidate's room LUCID times the session and long-term history
            cross = x.room[:, None] * x.history
            tokens["interest"] = self.proj["interest"](cross.flatten(1))
        names = tuple(n for n in self.candidate_names if n in tokens)
        stacked = torch.stack([tokens[n] for n in names], dim=1)
        return stacked + self._types(names), names

    def forward(self, x: TokenInputs) -> torch.Tensor:
        """Logits (B, T) of the tasks, in the order of ``settings.tasks.names``."""
        user = self.user_tokens(x)
        cand, names = self.candidate_tokens(x)
        mask = None
        if x.item_keep is not None and "item" in names:
            visible = torch.ones(cand.shape[0], user.shape[1] + len(names), dtype=torch.bool)
            visible[:, user.shape[1] + names.index("item")] = x.item_keep
            mask = visible[:, None, None, :]
        for i, block in enumerate(self.blocks):
            user, cand = block(user, cand, mask, last=i == len(self.blocks) - 1)
        return self.head(cand[:, 0])
