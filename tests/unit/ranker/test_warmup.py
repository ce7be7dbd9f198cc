"""The staged retirement of the item-ID token follows the trainer's step count."""

from __future__ import annotations

import pytest

from configs.ranker import WarmupSettings
from ranker import warmup_at

SCHEDULE = WarmupSettings(id_on_steps=10, id_ramp_steps=20)


@pytest.mark.parametrize(
    ("step", "stage", "drop_prob", "item_token"),
    [
        (0, "id_on", 0.0, True),
        (9, "id_on", 0.0, True),
        (10, "id_ramp", 0.0, True),
        (15, "id_ramp", 0.25, True),
        (29, "id_ramp", 0.95, True),
        (30, "id_removed", 1.0, False),
        (10**9, "id_removed", 1.0, False),
    ],
)
def test_staged_schedule(step: int, stage: str, drop_prob: float, item_token: bool) -> None:
    warmup = warmup_at("staged", SCHEDULE, step)
    assert (warmup.stage, warmup.drop_prob, warmup.item_token) == (stage, drop_prob, item_token)


@pytest.mark.parametrize(
    ("variant", "item_token"), [("id_only", True), ("hybrid", True), ("lucid_only", False)]
)
def test_fixed_variants_never_change(variant: str, item_token: bool) -> None:
    assert {warmup_at(variant, SCHEDULE, s).item_token for s in (0, 15, 10**6)} == {item_token}
