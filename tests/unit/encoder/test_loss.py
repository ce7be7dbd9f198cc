"""InfoNCE with false-negative masking: a repeated query's other items are not negatives."""

from __future__ import annotations

import math

import torch
from torch.nn import functional

from encoder.training.loss import InfoNCE, false_negative_mask


def test_mask_covers_same_query_same_group_and_same_item_but_never_the_diagonal() -> None:
    queries = ["pasta", "pasta", "football", "chess", "cats"]
    groups = ["room-1", "room-2", "room-3", "room-3", None]
    items = ["s1", "s2", "s3", "s4", "s1"]
    mask = false_negative_mask(queries, groups, items)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    for i, j in [(0, 1), (2, 3), (0, 4)]:  # same query, same group, same item
        expected[i, j] = expected[j, i] = True
    assert torch.equal(mask, expected)


def test_missing_groups_never_match_each_other() -> None:
    mask = false_negative_mask(["a", "b", "c"], [None, None, None], ["x", "y", "z"])
    assert not mask.any()


def test_masked_items_leave_the_denominator() -> None:
    torch.manual_seed(0)
    q = functional.normalize(torch.randn(4, 8), dim=-1)
    v = functional.normalize(torch.randn(4, 8), dim=-1)
    mask = false_negative_mask(["a", "a", "b", "c"], [None] * 4, ["1", "2", "3", "4"])
    loss = InfoNCE(temperature=0.1)(q, v, mask)
    logits = q @ v.T / 0.1
    manual = []
    for i in range(4):
        keep = [j for j in range(4) if j == i or not mask[i, j]]
        manual.append(-(logits[i, i] - torch.logsumexp(logits[i, keep], dim=0)))
    assert torch.allclose(loss, torch.stack(manual).mean(), atol=1e-5)
    # Query 0's duplicate (item 1) is excluded: its loss ignores logits[0, 1] entirely.
    assert not torch.allclose(loss, InfoNCE(temperature=0.1)(q, v))


def test_a_repeated_query_is_not_pushed_away_from_its_other_positive() -> None:
    """Two identical queries with two items: unmasked, each item is the other's negative."""
    q = functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=-1)
    v = functional.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1]]), dim=-1)
    mask = false_negative_mask(["same", "same"], [None, None], ["a", "b"])
    assert InfoNCE(0.05)(q, v, mask).item() < 1e-6
    assert InfoNCE(0.05)(q, v).item() > math.log(2) - 0.1


def test_temperature_is_learnable_and_capped() -> None:
    loss_fn = InfoNCE(temperature=0.07)
    q = functional.normalize(torch.randn(3, 4), dim=-1)
    loss_fn(q, q.flip(0)).backward()
    assert loss_fn.log_scale.grad is not None
    assert abs(loss_fn.temperature - 0.07) < 1e-6
    with torch.no_grad():
        loss_fn.log_scale.fill_(10.0)
    assert abs(loss_fn.temperature - 0.01) < 1e-6
    assert not InfoNCE(0.07, learnable=False).log_scale.requires_grad
