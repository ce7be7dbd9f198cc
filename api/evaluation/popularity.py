"""The popularity baseline: a room's decayed count of engagements, no model.

It scores with the ranker's own :class:`ranker.EngagementCounter` at its longest
half-life and counts the replay stream exactly as the trainer does: each chunk is
scored on the counts of earlier chunks, then counted (impressions, sampled ones
included, and positives). A learned variant that cannot beat it has learned
nothing a counter does not know. Its scores are counts, not probabilities, so its
logloss is undefined.
"""

from __future__ import annotations

import numpy as np

from configs.ranker import RankerSettings
from ranker import EngagementCounter, EventBatch, positive_channels


class Popularity:
    """Scores rooms by decayed engagements at the longest half-life; counts what it learns."""

    def __init__(self, settings: RankerSettings) -> None:
        self.counter = EngagementCounter(
            settings.engagement, settings.lucid.levels, settings.lucid.codes
        )
        self.half_life_s = settings.engagement.half_lives_s[-1]
        self.quality_watch_s = settings.tasks.quality_watch_s

    def score(self, batch: EventBatch) -> np.ndarray:
        """(n,) decayed engagements of each event's room at the event's own time.

        Read once at the batch's earliest time, then decayed on to each event: exact,
        since every count is older than the batch (scored before counted).
        """
        start = float(batch.ts.min())
        return self.counter.positives(batch.room, start) * np.exp2(
            -(batch.ts - start) / self.half_life_s
        )

    def learn(self, batch: EventBatch) -> None:
        """Count the batch's impressions and engagements (rooms only: it reads no codes)."""
        positives = positive_channels(batch.labels, len(batch), self.quality_watch_s)
        self.counter.add(batch.ts, batch.room, None, positives)
