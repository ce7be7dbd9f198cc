"""Settings of the ranker package (``ranker`` section)."""

from __future__ import annotations

from typing import Literal

from configs.base import Section

RankerVariant = Literal["id_only", "lucid_only", "hybrid", "staged"]


class RankerSettings(Section):
    """The ranker variant an A/B toggle may pick (the ranker issue adds the model's knobs)."""

    variant: RankerVariant = "staged"
