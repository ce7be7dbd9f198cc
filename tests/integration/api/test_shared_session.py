"""In-session state in a real Redis reads exactly what one process's state reads."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    client: redis.Redis, batches: list[list[tuple]]
) -> None:
    client.flushdb()
    # a history of 3: batches overflow it, so which entries survive is compared too
    ranker = load_settings("test", env={"LUCIDREC_RANKER__HISTORY__LENGTH": "3"}).ranker
    table = room_table(ranker.lucid.levels)
    local, shared = SessionState(ranker), RedisSessionState(client, ranker, 60.0)
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
    keys = id_keys([*ROOMS, "unknown-room", "never-shown"])
    for want, got in zip(local.counts(keys), shared.counts(keys), strict=True):
        np.testing.assert_array_equal(got, want)  # this replica's posts, from its mirror
    shared.refresh_counts()
    for want, got in zip(local.counts(keys), shared.counts(keys), strict=True):
        np.testing.assert_array_equal(got, want)  # every replica's, read back from Redis


def test_replays_expire_and_an_unreachable_store_is_a_shared_state_error(
    client: redis.Redis,
) -> None:
    replays = RedisReplays(client, ttl_s=0.3)
    replays.put("req-1", "d" * 64, b'{"items": []}')
    assert replays.get("req-1") == ("d" * 64, b'{"items": []}')
    assert client.pttl("lucidrec:replay:req-1") > 0
    assert replays.get("req-2") is None
    down = RedisSessionState(connect("redis://127.0.0.1:1/0"), load_settings("test").ranker, 1.0)
    with pytest.raises(SharedStateError, match=r"api\.shared_state_url"):
        down.history_of("u0")
