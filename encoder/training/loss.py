"""Q2I InfoNCE with in-batch negatives, a learnable temperature and false-negative masking.

For queries q_i and items v_j (unit vectors) of a batch, the loss of query i is
``-log softmax_j(s * q_i . v_j)[i]`` with s = 1 / temperature. An in-batch item
j != i that is also a positive for query i (the same query text, the same group
such as the same room or user, or the same slice) is not a negative: it is
removed from the denominator instead of being pushed away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

# CLIP's cap on the logit scale (temperature >= 0.01), which keeps training stable.
MAX_LOG_SCALE = math.log(100.0)


def false_negative_mask(
    queries: Sequence[str], groups: Sequence[str | None], items: Sequence[str]
) -> torch.Tensor:
    """Bool (B, B): True where item j is another positive of query i (never on the diagonal)."""
    size = len(queries)

    def same(values: Sequence[object]) -> torch.Tensor:
        codes = {value: code for code, value in enumerate(dict.fromkeys(values))}
        ids = torch.tensor([codes[v] for v in values])
        return ids[:, None] == ids[None, :]

    grouped = same(groups) & torch.tensor([g is not None for g in groups])[:, None]
    mask = same(queries) | grouped | same(items)
    return mask & ~torch.eye(size, dtype=torch.bool)


class InfoNCE(nn.Module):
    """Query-to-item InfoNCE; ``log_scale`` (log of 1/temperature) is learnable if asked."""

    def __init__(self, temperature: float, learnable: bool = True) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / temperature)), requires_grad=learnable
        )

    @property
    def temperature(self) -> float:
        return float(torch.exp(-self.log_scale.detach().clamp(max=MAX_LOG_SCALE)))

    def forward(
        self, queries: torch.Tensor, items: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss over the batch; ``mask`` from :func:`false_negative_mask`."""
        logits = queries @ items.T * self.log_scale.clamp(max=MAX_LOG_SCALE).exp()
        if mask is not None:
            logits = logits.masked_fill(mask.to(logits.device), float("-inf"))
        target = torch.arange(len(queries), device=logits.device)
        return functional.cross_entropy(logits, target)
