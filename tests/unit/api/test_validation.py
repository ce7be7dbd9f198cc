"""The API's input rules: ids fit every catalog column, event times lie in the window,
context is what the ranker reads, and the settings keep the window inside the ledger."""

from __future__ import annotations

import time

import msgspec
import pytest
from litestar.exceptions import ValidationException
from sqlalchemy import String

from api.schemas import EventIn, RankBody, SlicesBody, is_id
from api.validation import check_events, check_rank_context
from configs import Settings, SettingsError, load_settings
from workers.catalog.schema import Base

SETTINGS = Settings()


def refusal(call, *args) -> ValidationException:
    with pytest.raises(ValidationException) as refused:
        call(*args)
    return refused.value


def event(**changes) -> EventIn:
    fields = {"event_id": "e", "ts": time.time(), "user_id": "u", "room_id": "r"} | changes
    return msgspec.convert(fields, EventIn)


def test_the_id_limit_fits_every_id_column_of_the_catalog() -> None:
    """SQLite stores any length, PostgreSQL refuses past the column's: an id the API takes
    must fit every column that holds one, so both backends store the same ids."""
    columns = [
        column
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_id") and isinstance(column.type, String)
    ]
    assert {c.name for c in columns} >= {"room_id", "slice_id", "item_id", "event_id"}
    assert is_id("x" * min(c.type.length for c in columns))
    assert not is_id("x" * (min(c.type.length for c in columns) + 1))


@pytest.mark.parametrize(
    "value",
    ["", "a\x00", "a\n", "a\tb", "a b", "a/b", "caf\u00e9", "..", "-a", "a\u202e", "x" * 129],
)
def test_ids_outside_the_rules_are_refused_wherever_they_come(value: str) -> None:
    assert not is_id(value)
    for body, raw in (
        (RankBody, {"user_id": value}),
        (RankBody, {"user_id": "u", "candidates": [value]}),
        (EventIn, {"event_id": value, "ts": 1.0, "user_id": "u", "room_id": "r"}),
        (EventIn, {"event_id": "e", "ts": 1.0, "user_id": "u", "room_id": "r", "slice_id": value}),
        (SlicesBody, {"slices": [{"slice_id": value, "ts": 1.0}]}),
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(raw, body)


@pytest.mark.parametrize("value", ["r1", "user:42", "a.b@c", "auth0|5f1e", "retire_ids:staged"])
def test_ids_within_the_rules_pass(value: str) -> None:
    assert is_id(value)


def test_frames_must_be_base64_and_paths_printable() -> None:
    def frame(**fields) -> dict:
        return {"slices": [{"slice_id": "s", "ts": 1.0, "frames": [fields]}]}

    body = msgspec.convert(frame(data="aGVsbG8="), SlicesBody)
    assert msgspec.to_builtins(body.slices)[0]["frames"][0]["data"] == "aGVsbG8="  # for the worker
    for bad in ({"data": "!!"}, {"data": "aGVsbG8"}, {"path": "a\x00b"}, {"path": "a\n"}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(frame(**bad), SlicesBody)


def test_an_event_time_in_milliseconds_is_refused_naming_index_field_and_window() -> None:
    events = [event(), event(ts=1796235400000.0), event(ts=time.time() + 301)]
    refused = refusal(check_events, events, SETTINGS)
    assert refused.detail.startswith("events[1].ts: 1796235400000.0 is outside [now - 518400 s")
    assert "(and 1 more problem(s), listed in extra)" in refused.detail
    assert [p["key"] for p in refused.extra] == ["events[1].ts", "events[2].ts"]
    assert all("api.event_ts_future_s" in p["message"] for p in refused.extra)


def test_event_times_inside_the_window_pass() -> None:
    now = time.time()
    check_events([event(ts=now - 518_400 + 5), event(ts=now + 295)], SETTINGS)


def test_context_the_ranker_cannot_read_is_refused() -> None:
    features = SETTINGS.ranker.context
    check_rank_context({"hour": 23, "weekday": 6, "device": 7}, features)
    refused = refusal(check_rank_context, {"hour": 24, "mood": 1}, features)
    assert [p["key"] for p in refused.extra] == ["context.hour", "context"]
    assert refused.extra[0]["message"] == "24 is outside [0, 24), the size of feature 'hour'"
    assert (
        "unknown context feature 'mood'; the features are hour, weekday, device"
        in (refused.extra[1]["message"])
    )
    events = refusal(check_events, [event(), event(context={"weekday": 7})], SETTINGS)
    assert [p["key"] for p in events.extra] == ["events[1].context.weekday"]


def test_context_past_int64_is_refused_by_the_body_type() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"user_id": "u", "context": {"hour": 2**63}}, RankBody)


def test_an_event_window_longer_than_the_ledger_keeps_ids_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"api.event_ts_past_s \+ api.event_ts_future_s"):
        load_settings("default", env={"LUCIDREC_API__EVENT_TS_PAST_S": str(7 * 86400)})
    longer = {
        "LUCIDREC_API__EVENT_TS_PAST_S": "864000",
        "LUCIDREC_WORKERS__PROCESSED_RETENTION_S": "864300",
    }
    assert load_settings("default", env=longer).api.event_ts_past_s == 864000
