"""``POST /v1/events``: impressions and feedback, idempotent by ``event_id``, durable on 202.

The events are appended to the catalog's event log in the transaction that
records them as received (:mod:`workers.catalog.eventlog`), so a 202 means they
will be trained, whatever happens to a worker or to the task that follows: the
task only wakes the trainer, which trains from the log.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, post
from litestar.datastructures import State

from api.openapi import API_KEY, SHARED_STORE_DOWN, problems, request_example, success
from api.schemas import CONTEXT_EXAMPLE, EventsAccepted, EventsBody
from api.security import require_api_key
from api.validation import check_events

EVENTS_EXAMPLE = {
    "events": [
        {
            "event_id": "e-1",
            "ts": 1732265010.0,
            "user_id": "u1",
            "room_id": "r1",
            "slice_id": "r1-0007",
            "request_id": "4c1d2a0e9b7f4e55a1d3c2b1a0f9e8d7",
            "position": 3,
            "context": CONTEXT_EXAMPLE,
            "labels": {"click": 1, "watch_s": 95, "like": 0, "follow": 0},
        },
        {
            "event_id": "e-2",
            "ts": 1732265011.0,
            "user_id": "u1",
            "room_id": "r2",
            "position": 4,
            "context": CONTEXT_EXAMPLE,
        },
    ]
}
ACCEPTED_EXAMPLE = {
    "accepted": 2,
    "duplicates": 0,
    "task_id": "0f6b7c1e-3f0e-4a8e-9b7d-2c4a1e5f6a7b",
}


class EventsController(Controller):
    path = "/v1/events"
    tags = ["events"]
    guards = [require_api_key]

    @post(
        operation_id="postEvents",
        summary="Record impressions and feedback",
        status_code=202,
        sync_to_thread=True,
        security=[{API_KEY: []}],
        operation_class=request_example(
            "A click with a 95 s watch, and an impression", EVENTS_EXAMPLE
        ),
        responses={
            **success(
                202,
                EventsAccepted,
                ACCEPTED_EXAMPLE,
                "Recorded: the events are in the catalog's event log, which the trainer "
                "trains from.",
            ),
            **problems(400, 401, 413, 503, details={503: SHARED_STORE_DOWN}),
        },
    )
    def post_events(self, data: EventsBody, state: State) -> EventsAccepted:
        """Record events: the user's in-session history changes at once, training follows.

        Events already received (by ``event_id``) are acknowledged and skipped. An
        event without ``variant`` gets the user's current one, so every logged
        event carries its variant. ``task_id`` is the trainer's wake-up.
        """
        check_events(data.events, state.services.settings)
        services = state.services
        events = list({e.event_id: e for e in data.events}.values())
        for event in events:
            if event.variant is None:
                event.variant = services.assign(event.user_id).label
        appended = set(
            services.catalog.append_events(
                {e.event_id: msgspec.json.encode(e).decode() for e in events}
            )
        )
        fresh = [e for e in events if e.event_id in appended]
        services.metrics.count_events(len(fresh), len(data.events) - len(fresh))
        task_id = None
        if fresh:
            services.session.record(fresh, services.rooms.table())
            task_id = services.celery.send_task("lucidrec.train.events", queue="train").id
        return EventsAccepted(
            accepted=len(fresh), duplicates=len(data.events) - len(fresh), task_id=task_id
        )
