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

from api.schemas import EventsAccepted, EventsBody
from api.security import require_api_key
from api.validation import check_events


class EventsController(Controller):
    path = "/v1/events"
    tags = ["events"]
    guards = [require_api_key]

    @post(operation_id="postEvents", status_code=202, sync_to_thread=True)
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
        task_id = None
        if fresh:
            services.session.record(fresh, services.rooms.table())
            task_id = services.celery.send_task("lucidrec.train.events", queue="train").id
        return EventsAccepted(
            accepted=len(fresh), duplicates=len(data.events) - len(fresh), task_id=task_id
        )
