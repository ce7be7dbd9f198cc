"""Row-wise sparse optimizers: each step touches only the rows a mini-batch looked up.

The optimizer's state is a tensor beside the table's rows (same row numbers), so
rows, their state and their metadata grow, move and get evicted together. Dense
optimizers (``torch.optim``) would keep state for every row ever allocated and
update all of them on every step.
"""

from __future__ import annotations

from typing import Protocol

import torch

from configs.ranker import SparseSettings


class RowOptimizer(Protocol):
    """Updates ``weight[rows]`` in place from their gradients, keeping state in ``state``."""

    def state_width(self, dim: int) -> int:
        """Columns of state per row."""
        ...

    def initial_state(self) -> float:
        """Value of a fresh row's state."""
        ...

    def step(
        self, weight: torch.Tensor, state: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor
    ) -> None:
        """One update of the unique ``rows`` with gradients ``grad`` (len(rows), dim)."""
        ...


class Adagrad:
    """Adagrad with a per-element accumulator: ``s += g²; w -= lr·g/(√s + eps)``."""

    def __init__(self, lr: float, eps: float, initial_accumulator: float) -> None:
        self.lr, self.eps, self.initial = lr, eps, initial_accumulator

    def state_width(self, dim: int) -> int:
        return dim

    def initial_state(self) -> float:
        return self.initial

    def step(
        self, weight: torch.Tensor, state: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor
    ) -> None:
        acc = state.index_select(0, rows).add_(self._squared(grad))
        state.index_copy_(0, rows, acc)
        update = grad / acc.sqrt().add_(self.eps)
        weight.index_copy_(0, rows, weight.index_select(0, rows).sub_(update, alpha=self.lr))

    def _squared(self, grad: torch.Tensor) -> torch.Tensor:
        return grad * grad


class RowwiseAdagrad(Adagrad):
    """Adagrad with one accumulator per row (the mean of g² over the row), as in FBGEMM."""

    def state_width(self, dim: int) -> int:
        return 1

    def _squared(self, grad: torch.Tensor) -> torch.Tensor:
        return (grad * grad).mean(dim=1, keepdim=True)


class SGD:
    """Plain SGD; no state."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def state_width(self, dim: int) -> int:
        return 0

    def initial_state(self) -> float:
        return 0.0

    def step(
        self, weight: torch.Tensor, state: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor
    ) -> None:
        weight.index_copy_(0, rows, weight.index_select(0, rows).sub_(grad, alpha=self.lr))


def row_optimizer(spec: SparseSettings) -> RowOptimizer:
    """The row optimizer the settings name."""
    if spec.optimizer == "sgd":
        return SGD(spec.lr)
    kind = RowwiseAdagrad if spec.optimizer == "rowwise_adagrad" else Adagrad
    return kind(spec.lr, spec.eps, spec.initial_accumulator)
