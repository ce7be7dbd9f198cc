"""Which candidate tokens a variant uses, and the staged retirement of the item-ID token.

In ``staged`` (the default) the item-ID token helps while the LUCID tables warm up,
then is retired so the model cannot collapse back onto IDs (FLUID/LUCID's recipe).
On the trainer's step count::

    step < id_on_steps                    id_on      item-ID token on
    < id_on_steps + id_ramp_steps         id_ramp    dropped per example, p rising 0 -> 1
    afterwards                            id_removed token gone, its table freed

The ``interest`` token crosses the candidate's room LUCID (or, in
``dense_content``, its projected content embedding) with the user's pooled
history, so it exists wherever those do. The other variants are fixed:
``id_only`` (item ID, no candidate LUCIDs), ``lucid_only`` (LUCIDs, no item ID),
``hybrid`` (both, always), ``stats_only`` and ``dense_content`` (no ID ever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from configs.ranker import RankerSettings, RankerVariant, WarmupSettings

Stage = Literal["always", "never", "id_on", "id_ramp", "id_removed"]


@dataclass(frozen=True)
class Warmup:
    """Where the schedule stands: the stage and the item-ID token's drop probability."""

    stage: Stage
    drop_prob: float

    @property
    def item_token(self) -> bool:
        """Whether the model still has the item-ID token (and its table)."""
        return self.stage not in ("never", "id_removed")


def warmup_at(variant: RankerVariant, schedule: WarmupSettings, step: int) -> Warmup:
    """The warmup state of ``variant`` at trainer step ``step``."""
    if variant in ("id_only", "hybrid"):
        return Warmup("always", 0.0)
    if variant in ("lucid_only", "stats_only", "dense_content"):
        return Warmup("never", 1.0)
    ramp_start = schedule.id_on_steps
    ramp_end = ramp_start + schedule.id_ramp_steps
    if step < ramp_start:
        return Warmup("id_on", 0.0)
    if step < ramp_end:
        return Warmup("id_ramp", (step - ramp_start) / schedule.id_ramp_steps)
    return Warmup("id_removed", 1.0)


def candidate_tokens(settings: RankerSettings) -> tuple[str, ...]:
    """The candidate-side tokens a variant's model has (the item token may retire later).

    Every variant has the room's age and, unless ``engagement.features`` is off, its
    engagement statistics (``stats``), so a comparison of variants isolates what
    tells rooms apart: item IDs (``id_only``), LUCIDs (``lucid_only``), both
    (``hybrid``, ``staged``), the dense content embedding (``dense_content``) or
    nothing more (``stats_only``).
    """
    lucid = ("room", "slice", "interest")
    variant = settings.variant
    if variant == "id_only":
        tokens: tuple[str, ...] = ("age", "item")
    elif variant == "lucid_only":
        tokens = (*lucid, "age")
    elif variant == "stats_only":
        tokens = ("age",)
    elif variant == "dense_content":
        tokens = ("content", "interest", "age")
    else:
        tokens = (*lucid, "age", "item")
    return (*tokens, "stats") if settings.engagement.features else tokens
