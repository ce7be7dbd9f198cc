"""Engagement statistics: exact decay in any order, shrinkage, expiry, and the trainer's use."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configs.ranker import EngagementSettings
from ranker import EngagementCounter, OnlineTrainer, id_keys
from ranker.engagement import FEATURES_PER_HALF_LIFE
from tests.unit.ranker.helpers import small_settings, stream

HOUR = 3600.0
SPEC = EngagementSettings(half_lives_s=[HOUR, 24 * HOUR], prior_impressions=10.0)
ROOMS = id_keys(["a", "b", "c"])
CODES = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 5, 0, 0]])


def counter() -> EngagementCounter:
    return EngagementCounter(SPEC, levels=4, codes=8)


def clicks(n: int, rate: float) -> np.ndarray:
    """(n, 4) positives: the first ``rate * n`` events clicked."""
    out = np.zeros((n, 4))
    out[: int(rate * n), 0] = 1
    return out


def test_counts_decay_by_half_each_half_life() -> None:
    c = counter()
    c.add(np.array([0.0, HOUR]), ROOMS[:1].repeat(2), CODES[:1].repeat(2, 0), clicks(2, 0.5))
    got = c.features(ROOMS[:1], CODES[:1], now=HOUR)
    # room log-impressions at the 1 h half-life: 1 (the event now) + 0.5 (an hour ago)
    assert got[0, 0] == pytest.approx(np.log1p(1.5))
    # its clicks: only the first event clicked, an hour ago
    assert got[0, 1] == pytest.approx(np.log1p(0.5))
    later = c.features(ROOMS[:1], CODES[:1], now=2 * HOUR)
    assert later[0, 0] == pytest.approx(np.log1p(0.75))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10 * HOUR), st.integers(0, 2), st.booleans()), max_size=30))
def test_the_counts_do_not_depend_on_the_order_of_the_events(events) -> None:
    ts = np.array([e[0] for e in events], dtype=np.float64)
    room = np.array([e[1] for e in events], dtype=np.int64)
    positive = np.zeros((len(events), 4))
    positive[:, 0] = [e[2] for e in events]
    forward, backward = counter(), counter()
    forward.add(ts, ROOMS[room], CODES[room], positive)
    for i in reversed(range(len(events))):  # one at a time, newest first
        backward.add(
            ts[i : i + 1], ROOMS[room[i : i + 1]], CODES[room[i : i + 1]], positive[i : i + 1]
        )
    now = 11 * HOUR
    np.testing.assert_allclose(
        forward.features(ROOMS, CODES, now), backward.features(ROOMS, CODES, now), atol=1e-6
    )


def test_an_empty_counter_reads_zeros_of_the_configured_width() -> None:
    got = counter().features(ROOMS, CODES, now=0.0)
    assert got.shape == (3, FEATURES_PER_HALF_LIFE * 2) and not got.any()


def test_a_room_without_impressions_reads_its_codes_rate() -> None:
    c = counter()
    # room a: 200 impressions at a 50% click rate; b shares a's code and was never shown;
    # c, of another code, was never clicked in 200 impressions
    c.add(np.zeros(200), ROOMS[:1].repeat(200), CODES[:1].repeat(200, 0), clicks(200, 0.5))
    c.add(np.zeros(200), ROOMS[2:].repeat(200), CODES[2:].repeat(200, 0), clicks(200, 0.0))
    a, b = c.features(ROOMS[:2], CODES[:2], now=0.0)
    rates = slice(5, 9)  # the four room rates of the first half-life
    assert b[0] == 0.0  # no impressions of its own
    assert b[rates][0] == pytest.approx(a[-4], rel=1e-6)  # b's click rate is its code's
    # the code's rate is shrunk toward its parents' (25% over all rooms), a's toward it
    assert 0.4 < a[-4] < a[rates][0] < 0.5


def test_rates_move_from_the_code_to_the_room_as_impressions_accumulate() -> None:
    c = counter()
    n = 400
    # two rooms of one code: a clicked 80% of the time, b 10%
    c.add(np.zeros(n), ROOMS[:1].repeat(n), CODES[:1].repeat(n, 0), clicks(n, 0.8))
    c.add(np.zeros(n), ROOMS[1:2].repeat(n), CODES[1:2].repeat(n, 0), clicks(n, 0.1))
    a, b = c.features(ROOMS[:2], CODES[:2], now=0.0)
    assert a[5] > 0.75 and b[5] < 0.15  # each room's own rate dominates
    assert a[-4] == pytest.approx(b[-4]) == pytest.approx(0.45, abs=0.01)  # one code, its mean


def test_reading_before_the_newest_event_never_grows_the_counts() -> None:
    c = counter()
    c.add(np.array([HOUR]), ROOMS[:1], CODES[:1], clicks(1, 1.0))
    assert c.features(ROOMS[:1], CODES[:1], now=0.0)[0, 0] == pytest.approx(np.log1p(1.0))


def test_uncoded_events_count_for_the_room_but_no_prefix() -> None:
    c = counter()
    c.add(np.zeros(2), ROOMS[:2], CODES[:2], clicks(2, 1.0), coded=np.array([True, False]))
    a, b = c.features(ROOMS[:2], CODES[:2], now=0.0)
    assert a[0] == b[0] == pytest.approx(np.log1p(1.0))
    assert a[9] == pytest.approx(np.log1p(1.0))  # the shared code saw one impression, a's


def test_expiry_and_keep_drop_rooms() -> None:
    c = counter()
    c.add(np.array([0.0, 5 * HOUR, 5 * HOUR]), ROOMS, CODES, clicks(3, 1.0))
    assert c.forget_before(HOUR) == 1 and len(c) == 2
    assert c.features(ROOMS[:1], CODES[:1], now=5 * HOUR)[0, 0] == 0.0
    c.keep_rooms(ROOMS[2:])
    assert len(c) == 1
    clicked, shown = c.room_counts(ROOMS, now=5 * HOUR)
    assert shown.tolist() == [0.0, 0.0, 1.0] and clicked.tolist() == [0.0, 0.0, 1.0]


def test_the_trainer_scores_a_batch_on_earlier_counts_then_counts_it(monkeypatch) -> None:
    trainer = OnlineTrainer(small_settings(variant="lucid_only", training={"batch_size": 32}))
    seen: list[np.ndarray] = []
    logits = trainer.core.logits

    def recording(user_side, cands, step=None):
        seen.append(cands.stats.copy())
        return logits(user_side, cands, step)

    monkeypatch.setattr(trainer.core, "logits", recording)
    batch = stream().batch(64)
    trainer.train(batch)
    assert not seen[0].any()  # the first mini-batch saw an empty counter
    assert seen[1].any()  # the second saw the first one's counts
    assert len(trainer.engagement) == len(np.unique(batch.room))


def test_a_resumed_trainer_has_the_same_counts() -> None:
    trainer = OnlineTrainer(small_settings())
    events = stream()
    trainer.train(events.batch(300))
    tensors, meta = trainer.state()
    resumed = OnlineTrainer.from_state(tensors, meta)
    probe = events.batch(20)
    np.testing.assert_array_equal(
        resumed.engagement.features(probe.room, probe.room_lucid, probe.ts),
        trainer.engagement.features(probe.room, probe.room_lucid, probe.ts),
    )


def test_the_trainer_expires_counts_with_the_room_rows() -> None:
    trainer = OnlineTrainer(small_settings(sparse={"ttl_s": HOUR, "expire_every_s": 60.0}))
    events = stream()
    trainer.train(events.batch(100))
    assert len(trainer.engagement) > 0
    events.ts += 3 * HOUR
    later = events.batch(64, rooms="unseen")
    events.ts += 120.0
    trainer.train(later)
    trainer.train(events.batch(1, rooms="unseen"))
    assert len(trainer.engagement) <= len(np.unique(later.room)) + 1
