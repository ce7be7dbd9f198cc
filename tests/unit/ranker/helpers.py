"""Small ranker settings and events for tests (L=4 levels of N=8 codes, short history)."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from configs.loader import deep_merge
from configs.ranker import RankerSettings
from ranker import EventBatch, RankRequest
from ranker.synthetic import SyntheticStream

WEIGHTS = {"click": 1.0, "quality_watch": 1.0, "like": 0.5, "follow": 0.5}


def small_settings(**overrides: Any) -> RankerSettings:
    """Fast settings: 8 codes, 16-d rows, H=10, 64-event batches; ``overrides`` nest like YAML."""
    base = {
        "lucid": {"levels": 4, "codes": 8},
        "sparse": {"dim": 16, "min_count": 1, "initial_capacity": 64},
        "history": {"length": 10},
        "backbone": {"width": 16, "layers": 2, "heads": 2},
        "training": {"batch_size": 64},
        "warmup": {"id_on_steps": 4, "id_ramp_steps": 8},
    }
    return msgspec.convert(deep_merge(base, overrides), RankerSettings)


def stream(seed: int = 0) -> SyntheticStream:
    return SyntheticStream(users=60, seen_rooms=80, unseen_rooms=20, codes=8, seed=seed)


def request_for(events: EventBatch, history_of) -> RankRequest:
    """A request of the first event's user, ranking every room of ``events``."""
    user = events.user[:1]
    return RankRequest(
        user=int(user[0]),
        ts=float(events.ts[-1]),
        context=events.context[0],
        history=history_of(user),
        candidates=events.candidates,
    )


def same_user(events: EventBatch) -> EventBatch:
    """``events`` as if all were the first event's user at the last event's time and context."""
    n = len(events)
    return EventBatch(
        ts=np.full(n, events.ts[-1]),
        user=np.repeat(events.user[:1], n),
        room=events.room,
        room_lucid=events.room_lucid,
        slice_lucid=events.slice_lucid,
        room_age_s=events.room_age_s,
        context=np.repeat(events.context[:1], n, axis=0),
        content=events.content,
    )
