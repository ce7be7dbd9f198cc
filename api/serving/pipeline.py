"""One ``/v1/rank`` request: candidates -> the variant's served ranker -> MMR and exploration.

The candidates carry what the served variant reads beyond their codes: their
engagement statistics from the session's counter (:mod:`api.serving.engagement`),
which the exploration posteriors read too, and, for ``dense_content``, their
content embeddings. A variant that does not read one does not pay for it.

Replays: a response is kept under its ``request_id`` for ``api.replay_ttl_s``
(:mod:`api.serving.replays`); the same request with that id returns the same
list, and a different request with a used id is refused (409), so a client
cannot mix two answers up.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable

import msgspec
import numpy as np

from api.experiments import Assignment
from api.schemas import RankBody, RankedRoom, RankResponse
from api.serving.replays import Replays
from api.serving.rerank import mmr, thompson_pick, with_exploration
from api.serving.retrieval import Retriever
from api.serving.rooms import RoomCache, RoomTable
from api.serving.servers import ServedModels
from api.serving.session import Session
from ranker import Candidates, RankerServer, RankRequest, id_key
from workers.events import context_array


def candidate_content(table: RoomTable, index: np.ndarray, dim: int) -> np.ndarray:
    """(K, dim) content embeddings of the rooms at ``index``: zeros for a room with none
    yet, and for all when the table's embeddings are not ``dim`` wide (an encoder whose
    ``out_dim`` is not ``ranker.content_dim``), as :func:`workers.events.room_content`
    gives them to the trainer."""
    if table.embedding.shape[1] != dim:
        return np.zeros((len(index), dim), dtype=np.float32)
    return table.embedding[index]


class ReplayConflictError(ValueError):
    """A request_id that already names a different request."""


class ModelNotReadyError(RuntimeError):
    """The variant's ranker has no snapshot in the model store yet."""


def no_model_yet(variant: str) -> str:
    """Why ``variant`` has no model, when nothing more is known (which workers run)."""
    return (
        f"ranker variant {variant!r} has no model yet: the train worker writes its first "
        "snapshot when it starts, before any event; GET /ready says whether one runs"
    )


class RankPipeline:
    def __init__(
        self,
        rooms: RoomCache,
        models: ServedModels,
        session: Session,
        retriever: Retriever,
        replays: Replays,
        new_room_age_s: float,
        no_model: Callable[[str], str] | None = None,
    ) -> None:
        """``no_model(variant)``: why the variant has no model, for the 503 (what is
        missing: a train worker, or its first snapshot)."""
        self.no_model = no_model or no_model_yet
        self.rooms = rooms
        self.models = models
        self.session = session
        self.retriever = retriever
        self.replays = replays
        self.new_room_age_s = new_room_age_s

    def _replay(self, request_id: str, digest: str) -> RankResponse | None:
        found = self.replays.get(request_id)
        if found is None:
            return None
        if found[0] != digest:
            raise ReplayConflictError(
                f"request_id {request_id!r} was used for a different request; "
                "send a new request without request_id to rank again"
            )
        return msgspec.json.decode(found[1], type=RankResponse)

    def _candidates(
        self, server: RankerServer, table: RoomTable, index: np.ndarray, now: float
    ) -> Candidates:
        """The rooms at ``index`` of ``table`` as the served variant reads them: with their
        engagement statistics at ``now`` and their content embeddings if it reads those."""
        reads = server.core.features.candidate_names
        keys, room_lucid = table.keys[index], table.room_lucid[index]
        return Candidates(
            room=keys,
            room_lucid=room_lucid,
            slice_lucid=table.slice_lucid[index],
            room_age_s=np.maximum(now - table.started_at[index], 0.0),
            stats=self.session.stats(keys, room_lucid, now) if "stats" in reads else None,
            content=candidate_content(table, index, server.settings.content_dim)
            if "content" in reads
            else None,
        )

    def rank(self, body: RankBody, assignment: Assignment) -> RankResponse:
        digest = hashlib.sha256(
            msgspec.json.encode(msgspec.structs.replace(body, request_id=None))
        ).hexdigest()
        if body.request_id is not None:
            replay = self._replay(body.request_id, digest)
            if replay is not None:
                return replay
        settings = assignment.settings
        variant = settings.ranker.variant
        server = self.models.get(variant)
        if server is None:
            raise ModelNotReadyError(self.no_model(variant))
        table = self.rooms.table()
        excluded = set(body.exclude)
        if body.candidates is not None:
            given = [c for c in dict.fromkeys(body.candidates) if c not in excluded]
            find = table.index.get
            found = np.array([find(c, -1) for c in given], dtype=np.int64)
            ranked = found >= 0
            ranked[ranked] = table.coded[found[ranked]]
            rows = found[ranked].tolist()
            unknown = [given[i] for i in np.flatnonzero(~ranked)]
        else:
            interest = self.session.interest(body.user_id, table)
            rows = [
                r
                for r in self.retriever.candidates(table, interest)
                if table.coded[r] and table.ids[r] not in excluded
            ]
            unknown = []
        now = time.time()
        items: list[RankedRoom] = []
        if rows:
            index = np.array(rows, dtype=np.int64)
            request = RankRequest(
                user=id_key(body.user_id),
                ts=now,
                context=context_array(settings.ranker, [body.context])[0],
                history=self.session.history_of(body.user_id),
                candidates=self._candidates(server, table, index, now),
            )
            scores = server.score(request, settings.serving.task_weights)
            order = mmr(scores.score, table.embedding[index], body.k, settings.serving.mmr_lambda)
            picked = [int(i) for i in order]
            explored: set[int] = set()
            if settings.serving.exploration and settings.serving.exploration_slots:
                young = np.flatnonzero(request.candidates.room_age_s <= self.new_room_age_s)
                clicks, shown = self.session.counts(request.candidates.room[young], now)
                rng = np.random.default_rng(int(digest[:16], 16))  # replays draw the same
                draw = thompson_pick(clicks, shown, settings.serving.exploration_slots, rng)
                picked, explored = with_exploration(picked, [int(young[d]) for d in draw], body.k)
            probs, score = scores.probs[picked].tolist(), scores.score[picked].tolist()
            for i, p, s in zip(picked, probs, score, strict=True):
                row = rows[i]
                items.append(
                    RankedRoom(
                        room_id=table.ids[row],
                        score=s,
                        scores=dict(zip(scores.tasks, p, strict=True)),
                        lucid=table.lucid_text[row],
                        slice_lucid=table.slice_lucid_text[row],
                        explored=i in explored,
                    )
                )
        versions = server.versions()
        response = RankResponse(
            request_id=body.request_id or uuid.uuid4().hex,
            variant=assignment.label,
            ranker_variant=variant,
            model_version=f"{versions.run}:{versions.step}",
            codebook_version=table.codebook_version,
            items=items,
            unknown=unknown,
            # tells clients why the items are not sorted by score (mmr() at lambda 1 is
            # the plain score order)
            order="score" if settings.serving.mmr_lambda >= 1.0 else "mmr",
        )
        self.replays.put(response.request_id, digest, msgspec.json.encode(response))
        return response
