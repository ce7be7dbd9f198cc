"""In-session state in a real Redis reads what one process's state reads, on every replica."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.serving import engagement_stream
from api.serving.replays import RedisReplays
from api.serving.rooms import RoomTable
from api.serving.session import SessionState
from api.serving.shared import SharedStateError, connect
from api.serving.shared_session import RedisSessionState
from configs import load_settings
from ranker import id_keys
from workers.catalog import RoomView
from workers.messages import EventMessage

USERS = [f"u{i}" for i in range(3)]
ROOMS = [f"r{i}" for i in range(6)]  # r5 has no codes yet


def room_table(levels: int) -> RoomTable:
    rng = np.random.default_rng(0)
    rooms = []
    for i, room_id in enumerate(ROOMS):
        vector = rng.standard_normal(4).astype(np.float32)
        codes = None if i == 5 else tuple((i * (j + 1)) % 4 for j in range(levels))
        rooms.append(
            RoomView(room_id, "live", 0.0, None, 0.0, 1, 0.0, vector / np.linalg.norm(vector),
                     codes, codes, "v1" if codes else None)
        )  # fmt: skip
    return RoomTable.build(rooms, levels)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(f"{redis_url}/5")
    client.flushdb()
    yield client
    client.flushdb()


event = st.builds(
    lambda user, room, ts, click, watch: (user, room, ts, click, watch),
    st.sampled_from(USERS),
    st.sampled_from([*ROOMS, "unknown-room"]),
    st.integers(0, 5).map(float),  # few distinct times: ties keep their posted order
    st.booleans(),
    st.sampled_from([0.0, 5.0, 120.0]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(event, max_size=12), min_size=1, max_size=5))
def test_redis_state_reads_what_the_in_process_state_reads(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, batches: list[list[tuple]]
) -> None:
    client.flushdb()
    monkeypatch.setattr(engagement_stream, "READ_COUNT", 4)  # reads cross chunk boundaries
    # a history of 3: batches overflow it, so which entries survive is compared too
    ranker = load_settings("test", env={"LUCIDREC_RANKER__HISTORY__LENGTH": "3"}).ranker
    table = room_table(ranker.lucid.levels)
    local, shared = SessionState(ranker), RedisSessionState(client, ranker, 60.0)
    other = RedisSessionState(client, ranker, 0.0)  # a replica that reads before every use
    for b, batch in enumerate(batches):
        events = [
            EventMessage(
                event_id=f"e{b}-{i}",
                ts=ts,
                user_id=user,
                room_id=room,
                labels={"click": float(click), "watch_s": watch},
            )
            for i, (user, room, ts, click, watch) in enumerate(batch)
        ]
        assert shared.record(events, table) == local.record(events, table)
    for user in [*USERS, "nobody"]:
        mine, theirs = local.history_of(user), shared.history_of(user)
        np.testing.assert_array_equal(theirs.mask, mine.mask)
        np.testing.assert_array_equal(theirs.codes[theirs.mask], mine.codes[mine.mask])
        np.testing.assert_array_equal(theirs.ts[theirs.mask], mine.ts[mine.mask])
        want, got = local.interest(user, table), shared.interest(user, table)
        assert (want is None) == (got is None)
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # summed in another order
    # this replica's own posts; another replica's; one started after them all, which reads
    # the stream from its start (counted in other chunks: equal up to float rounding)
    late = RedisSessionState(client, ranker, 60.0)
    keys = id_keys([*ROOMS, "unknown-room", "never-shown"])
    lucid = np.vstack([table.room_lucid, np.zeros((2, ranker.lucid.levels), dtype=np.int64)])
    now = 7.0
    want_stats, want_counts = local.stats(keys, lucid, now), local.counts(keys, now)
    for replica in (shared, other, late):
        np.testing.assert_allclose(replica.stats(keys, lucid, now), want_stats, rtol=0, atol=1e-6)
        for want, got in zip(want_counts, replica.counts(keys, now), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_stream_is_trimmed_to_about_its_cap(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engagement_stream, "STREAM_MAXLEN", 100)
    ranker = load_settings("test").ranker
    shared, table = RedisSessionState(client, ranker, 60.0), room_table(ranker.lucid.levels)
    for i in range(300):
        event = EventMessage(event_id=f"t{i}", ts=float(i), user_id="u", room_id=f"r{i % 5}")
        shared.record([event], table)
    assert 100 <= client.xlen(engagement_stream.STREAM) < 300  # whole nodes go: about 100
    assert shared.counts(id_keys(["r0"]), 300.0)[1][0] > 0  # each post read back first


def test_replays_expire_and_an_unreachable_store_is_a_shared_state_error(
    client: redis.Redis,
) -> None:
    replays = RedisReplays(client, ttl_s=0.3, max_bytes=1 << 20)
    replays.put("req-1", "d" * 64, b'{"items": []}')
    assert replays.get("req-1") == ("d" * 64, b'{"items": []}')
    assert client.pttl("lucidrec:replay:req-1") > 0
    assert replays.get("req-2") is None
    down = RedisSessionState(connect("redis://127.0.0.1:1/0"), load_settings("test").ranker, 1.0)
    with pytest.raises(SharedStateError, match=r"api\.shared_state_url"):
        down.history_of("u0")
    with pytest.raises(SharedStateError, match=r"api\.shared_state_url"):
        down.stats(id_keys(["r0"]), np.zeros((1, 3), dtype=np.int64), 0.0)
