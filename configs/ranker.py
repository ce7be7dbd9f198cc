"""Settings of the ranker package (``ranker`` section).

The defaults keep the model small enough to train at 5k+ events/s and to score
1000 candidates in a few milliseconds on two CPU cores: 32-d rows, a 1-layer,
32-wide token transformer (``backbone.layers: 2`` scores about twice as slowly,
for a slightly better held-out AUC on the synthetic stream). Sub-sections group the
knobs by the part of the ranker they steer; YAML and
``LUCIDREC_RANKER__SYNC__SPARSE_INTERVAL_S=2`` reach them like any other key.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from configs.base import NonNegativeInt, PositiveFloat, PositiveInt, Section

RankerVariant = Literal["id_only", "lucid_only", "hybrid", "staged", "stats_only", "dense_content"]
TaskName = Literal["click", "quality_watch", "like", "follow"]
NonNegativeFloat = Annotated[float, Meta(ge=0.0)]

# A LUCID key packs (table, level, codes) into 63 bits: 4 + 4 bits, the rest for codes.
KEY_CODE_BITS = 55


def code_bits(codes: int) -> int:
    """Bits one code of a codebook with ``codes`` centroids takes in a packed key."""
    return max(1, (codes - 1).bit_length())


class SparseSettings(Section):
    """The collisionless tables (user id, item id, room LUCID, slice LUCID) share these.

    ``min_count``: a key gets its own row at its min_count-th training occurrence and
    reads the table's trained default row until then. ``ttl_s``: rows untouched for
    this long in event time are evicted (checked every ``expire_every_s``).
    """

    dim: PositiveInt = 32
    min_count: PositiveInt = 2
    ttl_s: PositiveFloat = 3 * 86400.0
    expire_every_s: PositiveFloat = 600.0
    optimizer: Literal["adagrad", "rowwise_adagrad", "sgd"] = "adagrad"
    lr: PositiveFloat = 0.05
    initial_accumulator: NonNegativeFloat = 0.0
    eps: PositiveFloat = 1e-8
    # the default row starts at N(0, init_std); new rows start as a copy of it
    init_std: NonNegativeFloat = 0.05
    initial_capacity: PositiveInt = 1024


class LucidSettings(Section):
    """How LUCID codes become features; ``levels`` and ``codes`` must match the quantizer's.

    ``keys``: ``prefix`` embeds the n-grams (c1), (c1,c2), ... ; ``unigram`` (ablation)
    embeds (l, c_l) per level. ``combine``: a LUCID token is the ``sum`` of its L
    embeddings, or a linear projection of their ``concat``.
    """

    levels: Annotated[int, Meta(ge=1, le=15)] = 4
    codes: Annotated[int, Meta(ge=2)] = 64
    keys: Literal["prefix", "unigram"] = "prefix"
    combine: Literal["sum", "concat"] = "sum"

    def __post_init__(self) -> None:
        bits = self.levels * code_bits(self.codes)
        if bits > KEY_CODE_BITS:
            raise ValueError(
                f"levels={self.levels} x codes={self.codes} needs {bits} bits per key, "
                f"more than the {KEY_CODE_BITS} a packed int64 key has; use fewer levels or codes"
            )


class HistorySettings(Section):
    """User history: the LUCIDs of the last ``length`` rooms engaged with, pooled twice.

    The in-session token weighs rooms of the last ``session_window_s`` with half-life
    ``session_half_life_s``; the long-term token weighs all of them with
    ``long_half_life_s``.
    """

    length: PositiveInt = 50
    session_window_s: PositiveFloat = 1800.0
    session_half_life_s: PositiveFloat = 600.0
    long_half_life_s: PositiveFloat = 3 * 86400.0


class ContextFeature(Section):
    """One small categorical of the request context; values are ints in [0, size)."""

    name: Annotated[str, Meta(min_length=1)]
    size: PositiveInt


def _default_context() -> list[ContextFeature]:
    return [
        ContextFeature(name="hour", size=24),
        ContextFeature(name="weekday", size=7),
        ContextFeature(name="device", size=8),
    ]


class EngagementSettings(Section):
    """Real-time engagement statistics of a candidate, counted (never learned) per room.

    Exponentially decayed counts of impressions, clicks, quality watches, likes and
    follows, per room and per room-LUCID prefix (levels 1..L), at each of
    ``half_lives_s`` (event time). A rate is shrunk toward its parent's rate with
    ``prior_impressions`` pseudo-impressions: room -> full code -> ... -> level-1
    prefix -> all rooms, so a room with few impressions reads its code's rate.
    ``features: false`` drops the statistics token from every variant (an ablation,
    and the baseline of ``bench/ranker.py``); the counts are kept either way, since
    exploration reads them.
    """

    half_lives_s: Annotated[list[PositiveFloat], Meta(min_length=1, max_length=8)] = msgspec.field(
        default_factory=lambda: [600.0, 7200.0, 172800.0]
    )
    prior_impressions: PositiveFloat = 20.0
    features: bool = True

    def __post_init__(self) -> None:
        if sorted(set(self.half_lives_s)) != self.half_lives_s:
            raise ValueError(f"half_lives_s must increase strictly, got {self.half_lives_s}")


class BackboneSettings(Section):
    """The token transformer: every token is projected to ``width``.

    With one layer only the readout's query is computed after the keys and values of
    all tokens; each further layer runs every candidate token through attention and
    the feed-forward, which is where scoring time goes.
    """

    width: PositiveInt = 32
    layers: PositiveInt = 1
    heads: PositiveInt = 2
    ffn_mult: PositiveInt = 2

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")


class TaskSettings(Section):
    """The heads; ``quality_watch`` is positive when watch_s >= ``quality_watch_s``."""

    names: Annotated[list[TaskName], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["click", "quality_watch", "like", "follow"]
    )
    quality_watch_s: PositiveFloat = 30.0

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"task names must be unique, got {self.names}")


class WarmupSettings(Section):
    """Staged item-ID retirement, in trainer steps: on, then dropped with a rising probability."""

    id_on_steps: NonNegativeInt = 20_000
    id_ramp_steps: NonNegativeInt = 20_000


class TrainingSettings(Section):
    """Online training: one optimizer step per mini-batch (Adam for dense weights)."""

    batch_size: PositiveInt = 256
    dense_lr: PositiveFloat = 2e-3
    seed: NonNegativeInt = 0


class SyncSettings(Section):
    """How often the trainer publishes to the model store (wall-clock seconds)."""

    sparse_interval_s: PositiveFloat = 5.0
    dense_interval_s: PositiveFloat = 300.0


class SnapshotSettings(Section):
    """Full snapshots for recovery and new servers; the newest ``keep`` are kept."""

    interval_s: PositiveFloat = 1800.0
    keep: PositiveInt = 3


class RankerSettings(Section):
    """The ranker: its variant (A/B toggles override it) and every model and training knob."""

    variant: RankerVariant = "staged"
    sparse: SparseSettings = msgspec.field(default_factory=SparseSettings)
    lucid: LucidSettings = msgspec.field(default_factory=LucidSettings)
    history: HistorySettings = msgspec.field(default_factory=HistorySettings)
    engagement: EngagementSettings = msgspec.field(default_factory=EngagementSettings)
    # width of a room's content embedding (the encoder's output), read by dense_content
    content_dim: PositiveInt = 128
    context: list[ContextFeature] = msgspec.field(default_factory=_default_context)
    # room age buckets (upper bounds, seconds); one more bucket takes everything older
    age_buckets_s: Annotated[list[PositiveFloat], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0]
    )
    backbone: BackboneSettings = msgspec.field(default_factory=BackboneSettings)
    tasks: TaskSettings = msgspec.field(default_factory=TaskSettings)
    warmup: WarmupSettings = msgspec.field(default_factory=WarmupSettings)
    training: TrainingSettings = msgspec.field(default_factory=TrainingSettings)
    sync: SyncSettings = msgspec.field(default_factory=SyncSettings)
    snapshot: SnapshotSettings = msgspec.field(default_factory=SnapshotSettings)
    # the trainer's event clock stops at wall time + this: an event stamped in the future
    # (milliseconds for seconds, a bad device clock) must not make expiry evict every row
    max_clock_skew_s: PositiveFloat = 300.0

    @property
    def lucid_width(self) -> int:
        """Width F of a LUCID token: one row (sum of the levels) or L rows side by side."""
        return self.sparse.dim * (self.lucid.levels if self.lucid.combine == "concat" else 1)

    def __post_init__(self) -> None:
        names = [feature.name for feature in self.context]
        if len(set(names)) != len(names):
            raise ValueError(f"context feature names must be unique, got {names}")
        if any(b >= a for a, b in zip(self.age_buckets_s[1:], self.age_buckets_s, strict=False)):
            raise ValueError(f"age_buckets_s must increase strictly, got {self.age_buckets_s}")
