"""A synthetic event stream whose labels depend on LUCID code prefixes.

For tests, benchmarks and demos: it shows what prefix features buy. Each user likes
two topics (level-1 codes), and each level-2 prefix has a quality; a click's logit
is ``3 * [c1 is one of the user's topics] + 1.5 * quality[c1, c2] - 2.5``. Quality
also lengthens watches, and likes and follows follow clicks. Room ids carry no
signal of their own, so a model can score a room it never saw only through the
prefixes that room shares with rooms it did see.

Rooms come in two groups: ``seen`` rooms, and ``unseen`` rooms whose level-2
prefixes all occur among the seen ones (their deeper levels are new). Train on
the seen rooms, then score the unseen ones.
"""

from __future__ import annotations

import numpy as np

from ranker.keys import id_keys
from ranker.types import EventBatch

TOPIC_WEIGHT, QUALITY_WEIGHT, BIAS = 3.0, 1.5, -2.5


class SyntheticStream:
    """Users, rooms with codes, and batches of labelled impressions in time order."""

    def __init__(
        self,
        *,
        users: int = 400,
        seen_rooms: int = 600,
        unseen_rooms: int = 200,
        levels: int = 4,
        codes: int = 8,
        context_sizes: tuple[int, ...] = (24, 7, 8),
        seed: int = 0,
        start_ts: float = 1.7e9,
        content_dim: int = 128,
    ) -> None:
        if levels < 2:
            raise ValueError("the synthetic stream needs at least 2 levels")
        rng = np.random.default_rng(seed)
        self.levels, self.codes, self.context_sizes = levels, codes, context_sizes
        self.user_keys = id_keys(f"user-{i}" for i in range(users))
        self.user_topics = np.stack(
            [rng.choice(codes, size=2, replace=False) for _ in range(users)]
        )
        self.quality = rng.standard_normal((codes, codes))
        seen = rng.integers(0, codes, (seen_rooms, levels))
        unseen = rng.integers(0, codes, (unseen_rooms, levels))
        unseen[:, :2] = seen[rng.integers(0, seen_rooms, unseen_rooms), :2]
        self.room_codes = np.concatenate([seen, unseen])
        self.slice_codes = self.room_codes.copy()
        self.slice_codes[:, -1] = rng.integers(0, codes, len(self.room_codes))
        self.room_keys = id_keys(f"room-{i}" for i in range(len(self.room_codes)))
        self.seen = np.arange(seen_rooms)
        self.unseen = np.arange(seen_rooms, seen_rooms + unseen_rooms)
        self._rng = rng
        self.ts = start_ts
        # a content embedding per room that knows its level-1 and level-2 codes, with
        # noise (what an encoder gives): dense_content reads it; its own generator keeps
        # the event draws the same with or without it
        content_rng = np.random.default_rng([seed, 1])
        basis = content_rng.standard_normal((2, codes, content_dim))
        content = basis[0, self.room_codes[:, 0]] + basis[1, self.room_codes[:, 1]]
        content += 0.5 * content_rng.standard_normal(content.shape)
        self.content = (content / np.linalg.norm(content, axis=1, keepdims=True)).astype(np.float32)

    def click_logit(self, users: np.ndarray, rooms: np.ndarray) -> np.ndarray:
        """The true click logit of user indices ``users`` on room indices ``rooms``."""
        c1, c2 = self.room_codes[rooms, 0], self.room_codes[rooms, 1]
        topical = (self.user_topics[users] == c1[:, None]).any(axis=1)
        return TOPIC_WEIGHT * topical + QUALITY_WEIGHT * self.quality[c1, c2] + BIAS

    def batch(self, n: int, rooms: str = "seen", rate_per_s: float = 100.0) -> EventBatch:
        """``n`` impressions on ``rooms`` ("seen", "unseen" or "all"), ``rate_per_s`` apart."""
        rng = self._rng
        pool = {"seen": self.seen, "unseen": self.unseen}.get(
            rooms, np.arange(len(self.room_codes))
        )
        users = rng.integers(0, len(self.user_keys), n)
        room = pool[rng.integers(0, pool.size, n)]
        ts = self.ts + np.arange(n) / rate_per_s
        self.ts = float(ts[-1]) + 1.0 / rate_per_s
        logit = self.click_logit(users, room)
        click = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
        quality = self.quality[self.room_codes[room, 0], self.room_codes[room, 1]]
        watch = click * rng.exponential(20.0 * np.exp(0.7 * quality))
        like = click & (rng.random(n) < 1.0 / (1.0 + np.exp(-(logit - 1.0))))
        follow = like & (rng.random(n) < 0.3)
        sizes = self.context_sizes  # hour and weekday first, as in the default settings
        context = [(ts // 3600) % sizes[0], (ts // 86400) % sizes[1]] if len(sizes) >= 2 else []
        context += [rng.integers(0, size, n) for size in sizes[len(context) :]]
        return EventBatch(
            ts=ts,
            user=self.user_keys[users],
            room=self.room_keys[room],
            room_lucid=self.room_codes[room],
            slice_lucid=self.slice_codes[room],
            room_age_s=rng.uniform(0.0, 7200.0, n),
            context=np.stack(context, axis=1).astype(np.int64)
            if context
            else np.zeros((n, 0), np.int64),
            labels={
                "click": click.astype(np.float64),
                "watch_s": watch,
                "like": like.astype(np.float64),
                "follow": follow.astype(np.float64),
            },
            content=self.content[room],
        )
