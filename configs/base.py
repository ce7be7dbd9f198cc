"""What every settings section shares: strictness about unknown keys, and constrained types."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
PositiveFloat = Annotated[float, Meta(gt=0.0)]
Unit = Annotated[float, Meta(ge=0.0, le=1.0)]


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every section: an unknown key is an error, not silently ignored."""
