"""Real-time engagement statistics: decayed counts per room and per room-LUCID prefix.

A candidate's engagement is counted, not learned, so it is ID-free: a room that
started a minute ago has counts after its first impressions, and its code's
counts from the start. For every key (a room, a prefix of a room LUCID at levels
1..L, and one row for all rooms) the counter keeps, at each half-life of
``ranker.engagement.half_lives_s``, exponentially decayed counts of five
channels: impressions, clicks, quality watches, likes and follows.

Decay is exact and order-free: a row stores its values as of its reference time
``ref`` (its newest event); an event at ``t <= ref`` adds ``2^-((ref - t) / h)``,
a later one first decays the row to ``t``. Reading at ``now`` decays by
``2^-((now - ref) / h)`` (never grows: ``now`` before ``ref`` reads the row as
stored). So the trainer, which counts its event stream, and an API process, which
counts the events posted to it, hold the same numbers for the same events, in any
order, up to float rounding.

:meth:`EngagementCounter.features` turns the counts into the ranker's statistics
token input, per half-life: log-counts of the room's impressions and positives,
its four rates shrunk toward its code's (and the code's toward its parent
prefix's, up to all rooms), and the full code's log-impressions and rates. An
empty counter gives all zeros, which is also what a candidate without statistics
reads.

Scoring reads the counter before counting: the trainer computes a mini-batch's
features, takes its step, and only then counts the batch, so an event's features
come from earlier events only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from configs.ranker import EngagementSettings
from ranker.errors import RankerError
from ranker.key_index import check_keys
from ranker.keys import LucidKeys
from ranker.slots import KeyedSlots, grown

CHANNELS = ("impressions", "click", "quality_watch", "like", "follow")
POSITIVES = CHANNELS[1:]
# prefix keys get their own table id, apart from the ranker's room (1) and slice (2) tables
PREFIX_TABLE_ID = 3
# per half-life: room log-impressions, room log-positives (4), room rates (4),
# full-code log-impressions, full-code rates (4)
FEATURES_PER_HALF_LIFE = 1 + 2 * len(POSITIVES) + 1 + len(POSITIVES)


def feature_width(settings: EngagementSettings) -> int:
    """Width S of the statistics vector of one candidate."""
    return FEATURES_PER_HALF_LIFE * len(settings.half_lives_s)


def positive_channels(
    labels: Mapping[str, np.ndarray], n: int, quality_watch_s: float
) -> np.ndarray:
    """(n, 4) bool: click, quality watch (watch_s >= threshold), like, follow, of raw labels."""

    def label(name: str) -> np.ndarray:
        values = labels.get(name)
        return np.zeros(n) if values is None else np.asarray(values, dtype=np.float64)

    return np.stack(
        [
            label("click") > 0,
            label("watch_s") >= quality_watch_s,
            label("like") > 0,
            label("follow") > 0,
        ],
        axis=1,
    )


class _DecayedRows:
    """Decayed counts (rows, half-lives, channels) by int64 key, with reference times."""

    def __init__(self, half_lives: np.ndarray, capacity: int = 1024) -> None:
        self.half_lives = half_lives
        self.slots = KeyedSlots(capacity)
        shape = (capacity + 1, len(half_lives), len(CHANNELS))
        self.values = np.zeros(shape)
        self.ref = np.full(capacity + 1, -np.inf)

    def __len__(self) -> int:
        return len(self.slots)

    def add(self, keys: np.ndarray, ts: np.ndarray, counts: np.ndarray) -> None:
        """Count events: ``keys`` (n,), times ``ts`` (n,), channel counts ``counts`` (n, 5)."""
        if keys.size == 0:
            return
        slots = self._slots_of(keys)
        new_ref = self.ref.copy()
        np.maximum.at(new_ref, slots, ts)
        touched = np.unique(slots)
        # a new row (ref -inf) holds zeros: its factor is 0
        self.values[touched] *= self._decay(new_ref[touched] - self.ref[touched])
        self.ref[touched] = new_ref[touched]
        weights = self._decay(self.ref[slots] - ts)  # (n, H, 1)
        np.add.at(self.values, slots, weights * counts[:, None, :])

    def read(self, keys: np.ndarray, now: np.ndarray) -> np.ndarray:
        """(n, H, 5) counts of ``keys`` decayed to ``now`` (n,); zeros for unknown keys."""
        slots = self.slots.find(keys)
        age = np.where(slots > 0, now - self.ref[slots], 0.0)
        return self.values[slots] * self._decay(age)

    def forget_before(self, ts: float) -> int:
        """Drop keys whose newest event is older than ``ts``."""
        used = self.slots.used()
        old = used[self.ref[used] < ts]
        if old.size:
            self.slots.remove_slots(old)
            self.values[old] = 0.0
            self.ref[old] = -np.inf
        return int(old.size)

    def keys(self) -> np.ndarray:
        return self.slots.slot_key[self.slots.used()]

    def _decay(self, age: np.ndarray) -> np.ndarray:
        """(…, H, 1) factors 2^(-age / h); a negative age (reading before ref) counts as 0."""
        age = np.maximum(np.asarray(age, dtype=np.float64), 0.0)
        return np.exp2(-age[..., None] / self.half_lives)[..., None]

    def _slots_of(self, keys: np.ndarray) -> np.ndarray:
        slots = self.slots.find(keys)
        new = slots == 0
        if new.any():
            fresh = np.unique(keys[new])
            added = self.slots.add(fresh)
            capacity = self.slots.capacity
            self.values = grown(self.values, capacity)
            self.ref = grown(self.ref, capacity, -np.inf)
            self.values[added] = 0.0
            self.ref[added] = -np.inf
            slots[new] = added[np.searchsorted(fresh, keys[new])]
        return slots

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        rows = self.slots.capacity + 1
        out = {f"{prefix}.values": self.values[:rows], f"{prefix}.ref": self.ref[:rows]}
        return out | {f"{prefix}.slots.{k}": v for k, v in self.slots.state().items()}

    def load(self, prefix: str, arrays: Mapping[str, np.ndarray]) -> None:
        self.slots = KeyedSlots.from_state(
            arrays[f"{prefix}.slots.slot_key"], arrays[f"{prefix}.slots.free"]
        )
        self.values = np.array(arrays[f"{prefix}.values"], dtype=np.float64)
        self.ref = np.array(arrays[f"{prefix}.ref"], dtype=np.float64)


class EngagementCounter:
    """Decayed engagement counts of rooms, their LUCID prefixes and all rooms together.

    Not thread-safe: its owner (a trainer, an API session) holds a lock.
    """

    GLOBAL_KEY = 0  # the one row of the "all rooms" level

    def __init__(self, settings: EngagementSettings, levels: int, codes: int) -> None:
        self.settings = settings
        self.levels, self.codes = levels, codes
        half_lives = np.asarray(settings.half_lives_s, dtype=np.float64)
        self._rooms = _DecayedRows(half_lives)
        self._prefixes = _DecayedRows(half_lives)
        self._all = _DecayedRows(half_lives, capacity=1)
        self._keys = LucidKeys(PREFIX_TABLE_ID, levels, codes, "prefix")

    def __len__(self) -> int:
        """Rooms counted."""
        return len(self._rooms)

    @property
    def width(self) -> int:
        return feature_width(self.settings)

    def add(
        self,
        ts: np.ndarray,
        room: np.ndarray,
        room_lucid: np.ndarray | None,
        positives: np.ndarray,
        coded: np.ndarray | None = None,
    ) -> None:
        """Count n impressions: times (n,), room keys (n,), room LUCIDs (n, L), the four
        positive channels (n, 4) (:func:`positive_channels`). ``coded`` (n,) marks the
        events whose room has a code (default: all); the others count for the room and
        all rooms, not for any prefix."""
        ts = np.asarray(ts, dtype=np.float64)
        room = check_keys(room)
        n = room.size
        positives = np.asarray(positives, dtype=np.float64).reshape(n, len(POSITIVES))
        if ts.shape != (n,) or not np.isfinite(ts).all():
            raise RankerError(f"engagement times must be {n} finite seconds, got {ts.shape}")
        counts = np.concatenate([np.ones((n, 1)), positives], axis=1)
        self._rooms.add(room, ts, counts)
        self._all.add(np.full(n, self.GLOBAL_KEY, dtype=np.int64), ts, counts)
        if room_lucid is None:
            return
        coded = np.ones(n, dtype=bool) if coded is None else np.asarray(coded, dtype=bool)
        if coded.any():
            codes = self._keys.check(np.asarray(room_lucid)[coded], "room_lucid")
            keys = self._keys(codes)  # (m, L)
            self._prefixes.add(
                keys.reshape(-1),
                np.repeat(ts[coded], self.levels),
                np.repeat(counts[coded], self.levels, axis=0),
            )

    def features(self, room: np.ndarray, room_lucid: np.ndarray, now: np.ndarray) -> np.ndarray:
        """(n, S) float32 statistics of n candidates (room keys, room LUCIDs (n, L)) at
        ``now`` (n,) or a scalar."""
        room = check_keys(room)
        n = room.size
        now = np.broadcast_to(np.asarray(now, dtype=np.float64), (n,))
        prior = self.settings.prior_impressions
        counts = self._all.read(np.full(n, self.GLOBAL_KEY, dtype=np.int64), now)
        rate = counts[..., 1:] / np.maximum(counts[..., :1], 1.0)  # all rooms: no shrinkage
        codes = self._keys.check(np.asarray(room_lucid), "room_lucid")
        prefix = self._keys(codes)  # (n, L)
        levels = self._prefixes.read(prefix.reshape(-1), np.repeat(now, self.levels))
        levels = levels.reshape(n, self.levels, *levels.shape[1:])
        for level in range(self.levels):
            counts = levels[:, level]
            rate = (counts[..., 1:] + prior * rate) / (counts[..., :1] + prior)
        code_counts, code_rate = counts, rate
        room_counts = self._rooms.read(room, now)
        room_rate = (room_counts[..., 1:] + prior * rate) / (room_counts[..., :1] + prior)
        parts = [
            np.log1p(room_counts),  # impressions and the four positives
            room_rate,
            np.log1p(code_counts[..., :1]),
            code_rate,
        ]
        return np.concatenate(parts, axis=-1).reshape(n, -1).astype(np.float32)

    def room_counts(
        self, room: np.ndarray, now: float, half_life: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, impressions) of rooms at one half-life (default the longest), for the
        exploration posteriors."""
        room = check_keys(room)
        counts = self._rooms.read(room, np.full(room.size, now))[:, half_life]
        return counts[:, 1], counts[:, 0]

    def positives(self, room: np.ndarray, now: float, half_life: int = -1) -> np.ndarray:
        """Decayed count of engagements (a click, quality watch, like or follow) per room:
        the ``popularity`` baseline's score."""
        room = check_keys(room)
        counts = self._rooms.read(room, np.full(room.size, now))[:, half_life]
        return counts[:, 1:].sum(axis=1)

    def forget_before(self, ts: float) -> int:
        """Drop rooms and prefixes with no event since ``ts`` (the room-row TTL); returns the
        number of rooms dropped."""
        self._prefixes.forget_before(ts)
        return self._rooms.forget_before(ts)

    def keep_rooms(self, room: np.ndarray) -> None:
        """Drop every room but those of ``room`` (prefix and global counts stay)."""
        held = self._rooms.keys()
        drop = held[~np.isin(held, check_keys(room))]
        if drop.size:
            slots = self._rooms.slots.find(drop)
            self._rooms.slots.remove_slots(slots)
            self._rooms.values[slots] = 0.0
            self._rooms.ref[slots] = -np.inf

    # --- exact state, for snapshots ----------------------------------------------------

    def _parts(self) -> tuple[tuple[str, _DecayedRows], ...]:
        return (("rooms", self._rooms), ("prefixes", self._prefixes), ("all", self._all))

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {k: v for name, rows in self._parts() for k, v in rows.state(name).items()}

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` saved (same settings)."""
        for name, rows in self._parts():
            rows.load(name, arrays)
            if rows.values.shape[1] != len(self.settings.half_lives_s):
                raise RankerError(
                    f"saved engagement counts have {rows.values.shape[1]} half-lives, the "
                    f"settings {len(self.settings.half_lives_s)}; start a new trainer"
                )
