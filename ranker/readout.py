"""Served scoring of a one-block model, where the readout's query is the same for every candidate.

With one block, only the readout token's output is read, and its query comes from
the readout token alone (a parameter): it is one vector for all candidates and all
users until the weights change. So what attention needs of any other token is,
per head, one score (that query against the token's key) and the token's value.
Both are linear in the token's normed state, so one fused projection
(H + W outputs instead of q|k|v's 3W) gives a token's *state*, and a cached
candidate token keeps just that.

The user-side tokens and the readout have the same scores for every candidate of
a request. Softmax attention over a group of tokens with fixed scores equals
attention over one token with the group's log-sum-exp as its score and the
group's softmax-weighted value as its value, so they are merged into one before
the candidates are touched. A candidate then attends over that token, its cached
tokens and its interest token: a few multiplies per head instead of a product
with every user-side key.

This is the same function as :meth:`RankerModel.mix` without a mask (serving
never drops the item token), up to float rounding; tests compare the two.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from ranker.model import RankerModel


class ReadoutScorer:
    """The fused projection and the merged fixed tokens of a one-block :class:`RankerModel`."""

    def __init__(self, model: RankerModel) -> None:
        if len(model.blocks) != 1:
            raise ValueError("ReadoutScorer serves one-block models only")
        self.model = model
        block = model.blocks[0]
        width = model.readout.shape[0]
        self.heads, self.width = block.heads, width
        d = width // block.heads
        readout = model.candidate_token("readout", torch.zeros(1, 0))  # (1, W)
        query = block.project(readout)[0, :width].view(block.heads, d) * d**-0.5
        weight, bias = block.qkv.weight, block.qkv.bias
        key_w = weight[width : 2 * width].view(block.heads, d, width)
        key_b = bias[width : 2 * width].view(block.heads, d)
        # score_h(x) = query_h . (W_k x + b_k)_h = x . (W_k,h^T query_h) + b_k,h . query_h
        self._weight = torch.cat([torch.einsum("hd,hdw->hw", query, key_w), weight[2 * width :]])
        self._bias = torch.cat([(key_b * query).sum(-1), bias[2 * width :]])
        self._readout_state = self.state(readout)  # (1, H + W)
        # the readout's residual joins the output projection's bias
        self._out_bias = block.out.bias + readout[0]

    @property
    def state_width(self) -> int:
        return self.heads + self.width

    def state(self, tokens: torch.Tensor) -> torch.Tensor:
        """(…, H + W): per head the readout's scaled score against each token, then its value."""
        return functional.linear(self.model.blocks[0].norm1(tokens), self._weight, self._bias)

    def logits(self, user: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Logits (B, T) from the user-side tokens (1, U, W) and candidate states (B, C, H + W)."""
        heads, n = self.heads, candidates.shape[0]
        fixed = torch.cat([self.state(user[0]), self._readout_state])  # (U + 1, H + W)
        score, value = fixed[:, :heads], fixed[:, heads:].unflatten(-1, (heads, -1))
        merged = torch.cat(
            [
                torch.logsumexp(score, dim=0),
                torch.einsum("th,thd->hd", torch.softmax(score, dim=0), value).flatten(),
            ]
        )
        tokens = torch.cat([merged.expand(n, 1, -1), candidates], dim=1)  # (B, 1 + C, H + W)
        weights = torch.softmax(tokens[..., :heads], dim=1)
        values = tokens[..., heads:].unflatten(-1, (heads, -1))  # (B, 1 + C, H, d)
        attended = (weights[..., None] * values).sum(dim=1).flatten(1)  # (B, W)
        block = self.model.blocks[0]
        out = functional.linear(attended, block.out.weight, self._out_bias)
        out = out + block.ffn(block.norm2(out))
        return self.model.head(out)
