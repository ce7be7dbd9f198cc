"""Progressive validation: replay the events in time order, predict each chunk, then train on it.

Every event is scored by a model that has seen only earlier events, so the
scores over the whole stream are an honest online evaluation. Ranking probes (a
last-period positive with its sampled negatives) are scored at their event's
time, with the same model and user history as that chunk's events. The event
stream (keys, context, ages) is built once and shared by all variants; only the
items' codes and the ranker settings differ between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from api.evaluation.adapters import Dataset
from configs.ranker import RankerSettings
from ranker import EventBatch, OnlineTrainer, id_keys


@dataclass(frozen=True)
class Stream:
    """The replay's per-event features, independent of the variant."""

    user: np.ndarray  # (n,) int64 user keys
    room: np.ndarray  # (n,) int64 room keys per event
    item_room: np.ndarray  # (items,) int64 room key per item
    item: np.ndarray  # (n,) item index
    ts: np.ndarray
    label: np.ndarray
    context: np.ndarray  # (n, C) in settings.ranker.context order
    first_ts: np.ndarray  # (items,) room start: given, else the item's first event

    @classmethod
    def build(cls, data: Dataset, settings: RankerSettings) -> Stream:
        n_items = len(data.slices)
        first = np.full(n_items, np.inf)
        np.minimum.at(first, data.item, data.ts)
        start = np.where(np.isfinite(data.start_ts), data.start_ts, first)
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
        item_room = id_keys(s.slice_id for s in data.slices)
        return cls(
            user=id_keys(data.user),
            room=item_room[data.item],
            item_room=item_room,
            item=data.item,
            ts=data.ts,
            label=data.label,
            context=np.stack(columns, axis=1) if columns else np.zeros((len(data), 0), np.int64),
            first_ts=start,
        )

    def age(self, item: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Seconds since the room started (0 before its start)."""
        return np.maximum(ts - self.first_ts[item], 0.0)

    def batch(self, rows: np.ndarray | slice, codes: np.ndarray) -> EventBatch:
        item = self.item[rows]
        return EventBatch(
            ts=self.ts[rows],
            user=self.user[rows],
            room=self.room[rows],
            room_lucid=codes[item],
            slice_lucid=codes[item],
            room_age_s=self.age(item, self.ts[rows]),
            context=self.context[rows],
            labels={"click": self.label[rows]},
        )

    def probe_batch(self, events: np.ndarray, items: np.ndarray, codes: np.ndarray) -> EventBatch:
        """Each probe event's user, time and context against its candidate ``items`` (p, K)."""
        k = items.shape[1]
        ts = np.repeat(self.ts[events], k)
        flat = items.reshape(-1)
        return EventBatch(
            ts=ts,
            user=np.repeat(self.user[events], k),
            room=self.item_room[flat],
            room_lucid=codes[flat],
            slice_lucid=codes[flat],
            room_age_s=self.age(flat, ts),
            context=np.repeat(self.context[events], k, axis=0),
        )


@dataclass(frozen=True)
class Probes:
    """Ranking probes: event index and its candidates (the positive item first, then negatives)."""

    event: np.ndarray  # (p,) sorted event indices
    items: np.ndarray  # (p, 1 + negatives)


def replay(
    stream: Stream,
    codes: np.ndarray,
    settings: RankerSettings,
    probes: Probes,
    *,
    chunk: int,
    desc: str,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Click probabilities of every event and candidate scores (p, K) of every probe.

    Runs on one torch thread: a ranker this small is no faster on two, and on a
    shared machine two threads that wait for each other run many times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _replay(stream, codes, settings, probes, chunk=chunk, desc=desc, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _replay(
    stream: Stream,
    codes: np.ndarray,
    settings: RankerSettings,
    probes: Probes,
    *,
    chunk: int,
    desc: str,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    trainer = OnlineTrainer(settings)
    click = trainer.tasks.index("click")
    n = len(stream.ts)
    probs = np.empty(n)
    probe_scores = np.empty(probes.items.shape)
    bounds = np.searchsorted(probes.event, np.arange(0, n + chunk, chunk))
    with tqdm(total=n, desc=desc, unit="event", disable=not progress) as bar:
        for i, start in enumerate(range(0, n, chunk)):
            rows = slice(start, min(start + chunk, n))
            batch = stream.batch(rows, codes)
            probs[rows] = trainer.predict(batch)[:, click]
            p0, p1 = bounds[i], bounds[i + 1]
            if p1 > p0:
                scored = stream.probe_batch(probes.event[p0:p1], probes.items[p0:p1], codes)
                probe_scores[p0:p1] = trainer.predict(scored)[:, click].reshape(p1 - p0, -1)
            trainer.train(batch)
            bar.update(rows.stop - rows.start)
    return probs, probe_scores
