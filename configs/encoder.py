"""Settings of the encoder package (``encoder`` section)."""

from __future__ import annotations

from configs.base import PositiveInt, Section


class EncoderSettings(Section):
    """The slice encoder: its output size (what the quantizer consumes)."""

    out_dim: PositiveInt = 128
