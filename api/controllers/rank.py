"""``POST /v1/rank``: ranked rooms for a user."""

from __future__ import annotations

import anyio.to_thread
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.exceptions import ClientException, ServiceUnavailableException

from api.schemas import RankBody, RankResponse
from api.serving.pipeline import ModelNotReadyError, ReplayConflictError
from api.validation import check_rank_context
from ranker import RankerError


class RankController(Controller):
    path = "/v1/rank"
    tags = ["rank"]

    @post(operation_id="rank", status_code=200)
    async def rank(self, data: RankBody, state: State, request: Request) -> RankResponse:
        """Rank the given candidates (or live rooms retrieved for the user), top ``k``.

        The user's A/B variant picks the ranker variant and the serving knobs.
        Candidates with no codes yet are listed in ``unknown``, not ranked. A context the
        variant's ranker cannot read (an unknown feature, a value past its size) is a 400.
        """
        services = state.services
        assignment = services.assign(data.user_id)
        check_rank_context(data.context, assignment.settings.ranker.context)
        request.scope["state"]["variant"] = assignment.label  # the latency metric's label
        try:
            response = await anyio.to_thread.run_sync(
                services.pipeline.rank, data, assignment, limiter=services.rank_lanes
            )
        except ReplayConflictError as exc:
            raise ClientException(status_code=409, detail=str(exc)) from None
        except ModelNotReadyError as exc:
            raise ServiceUnavailableException(detail=str(exc)) from None
        except RankerError as exc:
            raise ClientException(detail=str(exc)) from None
        return response
