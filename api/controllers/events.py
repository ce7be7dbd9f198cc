"""``POST /v1/events``: impressions and feedback, idempotent by ``event_id``."""

from __future__ import annotations

import msgspec
from litestar import Controller, post
from litestar.datastructures import State

from api.schemas import EventsAccepted, EventsBody
from api.security import require_api_key


class EventsController(Controller):
    path = "/v1/events"
    tags = ["events"]
    guards = [require_api_key]

    @post(operation_id="postEvents", status_code=202, sync_to_thread=True)
    def post_events(self, data: EventsBody, state: State) -> EventsAccepted:
        """Record events: the user's in-session history changes at once, training follows.

        Events already received (by ``event_id``) are acknowledged and skipped. An
        event without ``variant`` gets the user's current one, so every logged
        event carries its variant.
        """
        services = state.services
        ids = [e.event_id for e in data.events]
        fresh_ids = set(services.catalog.unprocessed("event_in", ids))
        fresh = list({e.event_id: e for e in data.events if e.event_id in fresh_ids}.values())
        for event in fresh:
            if event.variant is None:
                event.variant = services.assign(event.user_id).label
        task_id = None
        if fresh:
            services.session.record(fresh, services.rooms.table())
            result = services.celery.send_task(
                "lucidrec.train.events", args=[msgspec.to_builtins(fresh)], queue="train"
            )
            task_id = result.id
            services.catalog.mark_processed("event_in", [e.event_id for e in fresh])
        return EventsAccepted(
            accepted=len(fresh), duplicates=len(ids) - len(fresh), task_id=task_id
        )
