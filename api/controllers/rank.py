"""``POST /v1/rank``: ranked rooms for a user."""

from __future__ import annotations

import anyio.to_thread
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.exceptions import ClientException, ServiceUnavailableException

from api.openapi import problems, request_example, success
from api.schemas import CONTEXT_EXAMPLE, RankBody, RankResponse
from api.serving.pipeline import ModelNotReadyError, ReplayConflictError
from api.validation import check_rank_context
from ranker import RankerError

RANK_EXAMPLE = {
    "user_id": "u1",
    "k": 20,
    "context": CONTEXT_EXAMPLE,
    "candidates": ["r1", "r2", "r3"],
    "exclude": ["r9"],
}
RANKED_EXAMPLE = {
    "request_id": "4c1d2a0e9b7f4e55a1d3c2b1a0f9e8d7",
    "variant": "id_retirement:staged",
    "ranker_variant": "staged",
    "model_version": "51a555a2:5",
    "codebook_version": "20261122T082918-bad06bd117",
    "items": [
        {
            "room_id": "r2",
            "score": 1.49,
            "scores": {"click": 0.54, "quality_watch": 0.41, "like": 0.12, "follow": 0.05},
            "lucid": "37-25-4-18",
            "slice_lucid": "37-25-4-18",
            "explored": False,
        },
        {
            "room_id": "r1",
            "score": 1.51,
            "scores": {"click": 0.55, "quality_watch": 0.42, "like": 0.12, "follow": 0.05},
            "lucid": "37-25-4-11",
            "slice_lucid": "37-25-4-11",
            "explored": False,
        },
    ],
    "unknown": ["r3"],
    "order": "mmr",
}


class RankController(Controller):
    path = "/v1/rank"
    tags = ["rank"]

    @post(
        operation_id="rank",
        summary="Rank rooms for a user",
        status_code=200,
        operation_class=request_example("Rank three candidates", RANK_EXAMPLE),
        responses={
            **success(
                200,
                RankResponse,
                RANKED_EXAMPLE,
                "The ranking, in display order (see `order`: diversified, not sorted by score).",
            ),
            **problems(400, 409, 413, 503),
        },
    )
    async def rank(self, data: RankBody, state: State, request: Request) -> RankResponse:
        """Rank the given candidates (or live rooms retrieved for the user), top ``k``.

        The user's A/B variant picks the ranker variant and the serving knobs.
        Candidates with no codes yet are listed in ``unknown``, not ranked. A context the
        variant's ranker cannot read (an unknown feature, a value past its size) is a 400.

        The items come in display order, which is not the order of their ``score``:
        ``order: mmr`` says the list was diversified (maximal marginal relevance over the
        rooms' embeddings, ``serving.mmr_lambda``), and items with ``explored: true`` hold
        exploration slots for new rooms. Show them in list order.
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
