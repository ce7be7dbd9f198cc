"""Checks of request bodies that need the settings or the clock, and JSON nested too deep.

msgspec checks what a type can say (ids, sizes, ranges: :mod:`api.schemas`). What
depends on the deployment is checked here: the context features of ``ranker.context``
(a name the ranker has no column for, a value past its feature's size) and the window
of event times around the API's clock (``api.event_ts_past_s`` and
``api.event_ts_future_s``). A refusal is a 400 problem body like msgspec's: ``detail``
names the first problem, ``extra`` lists each one by key (``events[3].ts``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, ValidationException

from configs import Settings
from configs.ranker import ContextFeature
from workers.messages import EventMessage

Problem = dict[str, str]


def shown(value: object, chars: int = 64) -> str:
    """``repr(value)`` cut to ``chars``: a refusal echoes what it refuses, never megabytes."""
    text = repr(value)
    return text if len(text) <= chars else text[:chars] + "..."


def context_problems(
    context: Mapping[str, int], features: Sequence[ContextFeature], key: str
) -> list[Problem]:
    """What in ``context`` the ranker cannot read: unknown names, values past the size.

    The ranker would read either as 0 (:func:`workers.events.context_array`), so a
    client's typo or off-by-one would train and score silently as another context.
    """
    sizes = {feature.name: feature.size for feature in features}
    problems = []
    for name, value in context.items():
        size = sizes.get(name)
        if size is None:
            known = ", ".join(sizes) or "none"
            message = f"unknown context feature {shown(name)}; the features are {known}"
            problems.append({"key": key, "message": message, "source": "body"})
        elif value >= size:
            message = f"{value} is outside [0, {size}), the size of feature {name!r}"
            problems.append({"key": f"{key}.{name}", "message": message, "source": "body"})
    return problems


def ts_problem(ts: float, now: float, past_s: int, future_s: int, key: str) -> Problem | None:
    """A problem if ``ts`` lies outside [now - past_s, now + future_s]."""
    if now - past_s <= ts <= now + future_s:
        return None
    message = (
        f"{ts!r} is outside [now - {past_s} s, now + {future_s} s] (api.event_ts_past_s, "
        f"api.event_ts_future_s; now is {now:.0f}): ts is seconds since the Unix epoch"
    )
    return {"key": key, "message": message, "source": "body"}


def refuse(problems: list[Problem]) -> None:
    """Raise the 400 for ``problems``, if any."""
    if problems:
        first = problems[0]
        more = len(problems) - 1
        detail = f"{first['key']}: {first['message']}" + (
            f" (and {more} more problem(s), listed in extra)" if more else ""
        )
        raise ValidationException(detail=detail, extra=problems)


def check_events(events: Sequence[EventMessage], settings: Settings) -> None:
    """Refuse events the trainer would misread: times outside the window, context it has
    no column for (the trainer reads the deployment's ``ranker.context``)."""
    api, now = settings.api, time.time()
    features = settings.ranker.context
    problems = []
    for index, event in enumerate(events):
        where = f"events[{index}]"
        late = ts_problem(event.ts, now, api.event_ts_past_s, api.event_ts_future_s, f"{where}.ts")
        if late is not None:
            problems.append(late)
        problems += context_problems(event.context, features, f"{where}.context")
    refuse(problems)


def check_rank_context(context: Mapping[str, int], features: Sequence[ContextFeature]) -> None:
    """Refuse a rank request's context that the user's ranker variant cannot read."""
    refuse(context_problems(context, features, "context"))


class JsonRequest(Request):
    """A request whose JSON body nested past the interpreter's recursion limit is a 400.

    msgspec decodes nesting recursively and raises ``RecursionError`` at the limit
    (about 1000 levels); Litestar turns only decode errors into 400s, so without this
    such a body answered 500. No body of this API nests more than four levels.
    """

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException(detail="the JSON body nests too deeply") from None
