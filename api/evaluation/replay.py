"""Progressive validation: replay the events in time order, score each chunk, then learn from it.

Every event is scored by a model that has seen only earlier events, so the
scores over the whole stream are an honest online evaluation. The stream holds
the logged events and, right after each, its sampled impressions (label 0, same
user, time and context); models learn from both, while only the logged events'
scores come back for the event metrics. Ranking probes (a last-period positive
with its sampled negatives) are scored at their event's time, with the same model,
user history and engagement counts as that chunk's events. The stream (rooms,
keys, context, ages) is built once and shared by all variants; only the rooms'
codes, their content embeddings and the scorer differ between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from api.evaluation.adapters import Dataset
from api.evaluation.rooms import Rooms
from api.evaluation.sampling import Probes
from configs.ranker import RankerSettings
from ranker import EventBatch, OnlineTrainer, id_keys


@dataclass(frozen=True)
class Stream:
    """The replay's rows (logged events and sampled impressions), independent of the variant."""

    user: np.ndarray  # (N,) int64 user keys
    room: np.ndarray  # (N,) room index
    ts: np.ndarray  # (N,) non-decreasing
    label: np.ndarray  # (N,) the logged label; 0 for a sampled impression
    context: np.ndarray  # (N, C) in settings.ranker.context order
    logged_row: np.ndarray  # (n,) the row of each logged event, increasing
    room_key: np.ndarray  # (rooms,) int64 room keys
    room_item: np.ndarray  # (rooms,) the item (content and codes) of each room
    room_start: np.ndarray  # (rooms,) where a room's age counts from

    @classmethod
    def build(
        cls, data: Dataset, rooms: Rooms, sampled: np.ndarray, settings: RankerSettings
    ) -> Stream:
        """The logged events of ``data`` in ``rooms``, each followed by its row of
        ``sampled`` rooms (n, K; -1 pads a short row)."""
        extra = (sampled >= 0).sum(axis=1)
        source = np.repeat(np.arange(len(data)), 1 + extra)  # the logged event of each row
        logged_row = np.cumsum(1 + extra) - (1 + extra)
        logged = np.zeros(len(source), dtype=bool)
        logged[logged_row] = True
        room = np.empty(len(source), dtype=np.int64)
        room[logged_row] = rooms.event_room
        room[~logged] = sampled[sampled >= 0]  # row-major: by event, in draw order
        derived = {
            "hour": (data.ts // 3600 % 24).astype(np.int64),
            "weekday": ((data.ts // 86400 + 3) % 7).astype(np.int64),  # 1970-01-01: Thursday
        }
        columns = []
        for feature in settings.context:
            values = data.context.get(feature.name, derived.get(feature.name))
            if values is None:
                values = np.zeros(len(data), dtype=np.int64)
            columns.append(np.clip(values, 0, feature.size - 1))
        context = np.stack(columns, axis=1) if columns else np.zeros((len(data), 0), np.int64)
        return cls(
            user=id_keys(data.user)[source],
            room=room,
            ts=data.ts[source],
            label=np.where(logged, data.label[source], 0.0),
            context=context[source],
            logged_row=logged_row,
            room_key=id_keys(rooms.ids),
            room_item=rooms.item,
            room_start=rooms.start_ts,
        )

    def __len__(self) -> int:
        return len(self.ts)

    def age(self, room: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Seconds since the room started (0 before its start)."""
        return np.maximum(ts - self.room_start[room], 0.0)

    def _rooms(
        self, room: np.ndarray, ts: np.ndarray, codes: np.ndarray, content: np.ndarray | None
    ) -> dict[str, np.ndarray | None]:
        item = self.room_item[room]
        return {
            "room": self.room_key[room],
            "room_lucid": codes[item],
            "slice_lucid": codes[item],
            "room_age_s": self.age(room, ts),
            "content": None if content is None else content[item],
        }

    def batch(
        self, rows: slice, codes: np.ndarray, content: np.ndarray | None = None
    ) -> EventBatch:
        """The rows' events with their labels; ``codes`` (items, L) and ``content`` (items, E)
        are the items' LUCIDs and embeddings."""
        return EventBatch(
            ts=self.ts[rows],
            user=self.user[rows],
            context=self.context[rows],
            labels={"click": self.label[rows]},
            **self._rooms(self.room[rows], self.ts[rows], codes, content),
        )

    def probe_batch(
        self,
        events: np.ndarray,
        rooms: np.ndarray,
        codes: np.ndarray,
        content: np.ndarray | None = None,
    ) -> EventBatch:
        """Each probe's logged event (user, time, context) against its candidate ``rooms``
        (p, K), flattened probe by probe."""
        k = rooms.shape[1]
        rows = self.logged_row[events]
        ts = np.repeat(self.ts[rows], k)
        return EventBatch(
            ts=ts,
            user=np.repeat(self.user[rows], k),
            context=np.repeat(self.context[rows], k, axis=0),
            **self._rooms(rooms.reshape(-1), ts, codes, content),
        )


class Scorer(Protocol):
    """What the replay drives: score a chunk without learning, then learn from it."""

    def score(self, batch: EventBatch) -> np.ndarray:
        """(n,) scores of the batch's events; nothing is updated."""
        ...

    def learn(self, batch: EventBatch) -> None:
        """Update on the batch (its labels are the outcome)."""
        ...


class ClickModel:
    """A ranker variant's online trainer, scored by its click probability."""

    def __init__(self, settings: RankerSettings) -> None:
        self.trainer = OnlineTrainer(settings)
        self.click = self.trainer.tasks.index("click")

    def score(self, batch: EventBatch) -> np.ndarray:
        return self.trainer.predict(batch)[:, self.click]

    def learn(self, batch: EventBatch) -> None:
        self.trainer.train(batch)


def replay(
    stream: Stream,
    scorer: Scorer,
    probes: Probes,
    codes: np.ndarray,
    content: np.ndarray | None = None,
    *,
    chunk: int,
    desc: str,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every logged event (n,) and of every probe's candidates (p, K).

    Chunks of ``chunk`` stream rows: score the chunk and its probes, then learn
    from it. Runs on one torch thread: a ranker this small is no faster on two,
    and on a shared machine two threads that wait for each other run many times
    slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        n = len(stream)
        scores = np.empty(n)
        probe_scores = np.empty(probes.rooms.shape)
        probe_rows = stream.logged_row[probes.event]
        bounds = np.searchsorted(probe_rows, np.arange(0, n + chunk, chunk))
        with tqdm(total=n, desc=desc, unit="row", disable=not progress) as bar:
            for i, start in enumerate(range(0, n, chunk)):
                rows = slice(start, min(start + chunk, n))
                batch = stream.batch(rows, codes, content)
                scores[rows] = scorer.score(batch)
                p0, p1 = bounds[i], bounds[i + 1]
                if p1 > p0:
                    scored = stream.probe_batch(
                        probes.event[p0:p1], probes.rooms[p0:p1], codes, content
                    )
                    probe_scores[p0:p1] = scorer.score(scored).reshape(p1 - p0, -1)
                scorer.learn(batch)
                bar.update(rows.stop - rows.start)
        return scores[stream.logged_row], probe_scores
    finally:
        torch.set_num_threads(threads)
