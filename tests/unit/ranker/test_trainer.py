"""The online trainer: deterministic, progressive validation, history, warmup, expiry, targets."""

from __future__ import annotations

import numpy as np
import torch

from ranker import OnlineTrainer, task_targets
from ranker.core import event_user_side
from ranker.features import TrainStep
from ranker.types import EventBatch
from tests.unit.ranker.helpers import small_settings, stream


def test_training_is_deterministic_for_a_seed() -> None:
    runs = []
    for _ in range(2):
        trainer, events = OnlineTrainer(small_settings()), stream(seed=4)
        for _ in range(3):
            trainer.train(events.batch(200))
        runs.append((trainer, events.batch(50)))
    (a, probe), (b, _) = runs
    np.testing.assert_array_equal(a.predict(probe), b.predict(probe))
    assert a.stats() == b.stats()


def test_predict_changes_nothing() -> None:
    trainer, events = OnlineTrainer(small_settings(sparse={"min_count": 2})), stream()
    trainer.train(events.batch(300))
    probe = events.batch(100, rooms="unseen")
    before = (trainer.stats(), trainer.predict(probe))
    after = (trainer.stats(), trainer.predict(probe))
    assert {k: v for k, v in before[0].items() if k != "tables"} == {
        k: v for k, v in after[0].items() if k != "tables"
    }
    np.testing.assert_array_equal(before[1], after[1])
    for name, table in after[0]["tables"].items():
        assert {k: v for k, v in table.items() if k != "filtered_lookups"} == {
            k: v for k, v in before[0]["tables"][name].items() if k != "filtered_lookups"
        }


def test_engaged_events_enter_the_history_after_their_own_step() -> None:
    trainer = OnlineTrainer(small_settings())
    batch = stream().batch(64)
    assert not trainer.history_of(batch).mask.any()
    trainer.train(batch)
    engaged = batch.label("click") > 0
    history = trainer.history.read(batch.user[engaged][:1])
    assert history.mask[0].any()
    expected = {
        tuple(c) for c in batch.room_lucid[engaged & (batch.user == batch.user[engaged][0])]
    }
    got = {tuple(c) for c in history.codes[0][history.mask[0]]}
    assert got <= expected and got


def test_staged_warmup_retires_the_item_table() -> None:
    trainer, events = OnlineTrainer(small_settings(variant="staged")), stream()
    seen = []
    for _ in range(14):
        trainer.train(events.batch(64))
        stats = trainer.stats()
        seen.append(
            (stats["step"], stats["stage"], stats["item_drop_prob"], "item" in stats["tables"])
        )
    assert seen[0] == (1, "id_on", 0.0, True)
    assert seen[5] == (6, "id_ramp", 0.25, True)
    assert seen[11] == (12, "id_removed", 1.0, False)
    assert "item" not in trainer.core.tables


def test_rows_untouched_for_the_ttl_are_evicted() -> None:
    settings = small_settings(variant="hybrid", sparse={"ttl_s": 5.0, "expire_every_s": 1.0})
    trainer, events = OnlineTrainer(settings), stream()
    early = events.batch(64, rate_per_s=10.0)
    trainer.train(early)
    events.ts += 60.0
    late = events.batch(64, rate_per_s=10.0)
    trainer.train(late)
    items = trainer.core.tables["item"]
    only_early = np.setdiff1d(early.room, late.room)
    assert (items.rows(only_early) == 0).all()
    assert (items.rows(late.room) > 0).all()
    assert items.stats()["evictions"] == only_early.size
    assert trainer.stats()["history_users"] <= len(np.unique(late.user))


def test_a_quiet_stream_still_expires_rows_on_the_wall_clock_after_its_last_event() -> None:
    settings = small_settings(variant="hybrid", sparse={"ttl_s": 5.0, "expire_every_s": 1.0})
    wall = [1000.0]
    trainer, events = OnlineTrainer(settings, clock=lambda: wall[0]), stream()
    batch = events.batch(64, rate_per_s=10.0)
    trainer.train(batch)
    items = trainer.core.tables["item"]
    wall[0] += 2.0  # quiet for less than the ttl: nothing goes
    trainer.expire_idle()
    assert (items.rows(batch.room) > 0).all()
    wall[0] += 60.0  # quiet for longer than the ttl: every row of the batch goes
    trainer.expire_idle()
    assert (items.rows(batch.room) == 0).all()
    assert items.stats()["evictions"] == np.unique(batch.room).size


def test_expire_idle_before_any_event_is_a_no_op() -> None:
    trainer = OnlineTrainer(small_settings(variant="hybrid"), clock=lambda: 1e12)
    trainer.expire_idle()
    assert trainer.stats()["step"] == 0


def test_targets_follow_the_labels() -> None:
    batch = EventBatch(
        ts=np.zeros(3),
        user=np.arange(3),
        room=np.arange(3),
        room_lucid=np.zeros((3, 4), int),
        slice_lucid=np.zeros((3, 4), int),
        room_age_s=np.zeros(3),
        context=np.zeros((3, 3), int),
        labels={"click": np.array([1.0, 0, 0]), "watch_s": np.array([45.0, 10.0, 0])},
    )
    targets = task_targets(batch, ("click", "quality_watch", "like"), quality_watch_s=30.0)
    assert targets.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_a_dropped_item_token_has_no_influence_and_p_sets_the_drop_rate() -> None:
    trainer = OnlineTrainer(small_settings(variant="hybrid"))
    trainer.train(stream().batch(256))
    batch = stream(seed=1).batch(400)
    core = trainer.core
    user_side = event_user_side(batch, trainer.history_of(batch))
    step = TrainStep(
        now=float(batch.ts.max()), version=99, drop_prob=0.3, generator=trainer.generator
    )
    x, _ = core.features.inputs(user_side, batch.candidates, step)
    assert 0.6 < x.item_keep.float().mean().item() < 0.8
    core.model.eval()
    with torch.no_grad():
        x.item_keep = torch.zeros(len(batch), dtype=torch.bool)
        dropped = core.model(x)
        x.item, x.item_keep = None, None
        absent = core.model(x)
    torch.testing.assert_close(dropped, absent, rtol=0, atol=1e-6)
