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
tokens and its per-request tokens: a few multiplies per head instead of a product
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

    caches_readout = False  # the readout joins the user side's merged token

    def __init__(self, model: RankerModel) -> None:
        if len(model.blocks) != 1:
            raise ValueError("ReadoutScorer serves one-block models only")
        self.model = model
        with torch.no_grad():  # a copy of the weights as they are now: the owner rebuilds it
            self._fold(model)

    def _fold(self, model: RankerModel) -> None:
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
        self._readout = readout
        # the readout's residual joins the output projection's bias
        self._out_bias = block.out.bias + readout[0]

    @property
    def widths(self) -> tuple[int, ...]:
        """Widths of the arrays an entry is kept in (see :meth:`entries`)."""
        return (self.heads, self.width)

    def state(self, tokens: torch.Tensor) -> torch.Tensor:
        """(…, H + W): per head the readout's scaled score against each token, then its value."""
        return functional.linear(self.model.blocks[0].norm1(tokens), self._weight, self._bias)

    def entries(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """What a cache keeps of tokens (k, W): scores (k, H) and values (k, W), apart, so
        a request gathers each contiguous."""
        state = self.state(tokens)
        return [state[:, : self.heads].contiguous(), state[:, self.heads :].contiguous()]

    def logits(
        self, user: torch.Tensor, cached: list[torch.Tensor], dynamic: list[torch.Tensor]
    ) -> torch.Tensor:
        """Logits (B, T) from the user-side tokens (1, U, W), the candidates' cached
        :meth:`entries` gathered token-major ((C, B, H), (C, B, W)) and their per-request
        tokens (interest, statistics, content), each (B, W).

        Token-major, softmax and the weighted sum run over the leading axis, across
        contiguous (B, …) slabs: with the token axis inside, every reduction walks
        2-wide rows, 3x slower at this size.
        """
        heads, n = self.heads, cached[0].shape[1]
        fixed = self.state(torch.cat([user[0], self._readout]))  # (U + 1, H + W)
        score, value = fixed[:, :heads], fixed[:, heads:].unflatten(-1, (heads, -1))
        scores = [torch.logsumexp(score, dim=0).expand(1, n, heads), cached[0]]
        values = [
            torch.einsum("th,thd->hd", torch.softmax(score, dim=0), value).reshape(1, 1, -1),
            cached[1],
        ]
        if dynamic:
            state = self.state(torch.stack(dynamic))  # (D, B, H + W)
            scores.append(state[..., :heads])
            values.append(state[..., heads:])
        scores = torch.cat(scores)  # (T, B, H)
        values = torch.cat([values[0].expand(1, n, -1), *values[1:]])  # (T, B, W)
        weights = (scores - scores.amax(dim=0)).exp()
        weights = weights / weights.sum(dim=0)
        attended = (weights[..., None] * values.unflatten(-1, (heads, -1))).sum(dim=0)
        block = self.model.blocks[0]
        out = functional.linear(attended.flatten(1), block.out.weight, self._out_bias)
        out = out + block.ffn(block.norm2(out))
        return self.model.head(out)
