"""Fail fast: every requested variant's prerequisites, checked before anything is encoded.

Encoding the items and training the Q2I encoder take minutes; a run that would
stop afterwards for want of data (too few Q2I pairs, too few items to fit the
codebook, too few events) stops here instead, naming the variant, what is
missing and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.evaluation.adapters import Dataset, EvaluationError
from api.evaluation.codes import ItemCodes
from api.evaluation.q2i import check_pairs, co_like_pairs
from api.evaluation.variants import ENCODERS, VARIANTS
from configs import EncoderSettings

if TYPE_CHECKING:
    from api.evaluation.protocol import ReplayConfig

EVENTS_PER_PERIOD = 10  # fewer cannot give a per-period AUC


def check_prerequisites(
    data: Dataset, config: ReplayConfig, codes: ItemCodes, encoder_settings: EncoderSettings
) -> None:
    """Raise an EvaluationError for the first requested variant that cannot run on ``data``."""
    if len(data) < EVENTS_PER_PERIOD * config.periods:
        raise EvaluationError(
            f"variants {', '.join(config.variants)}: {len(data)} events are too few to replay "
            f"in {config.periods} periods; give at least {EVENTS_PER_PERIOD * config.periods} "
            "(a larger --max-events)"
        )
    fit = len(codes.fit_items)
    fitted = [v for v in config.variants if VARIANTS[v].codes in ENCODERS]
    if fitted and fit < config.codes:
        raise EvaluationError(
            f"variant(s) {', '.join(fitted)}: the codebook is fitted on the items with an "
            f"event in the first half of the time range, here {fit}, fewer than its "
            f"{config.codes} codes per level; lower --codes or replay more events"
        )
    trained = [v for v in config.variants if VARIANTS[v].codes == "text_q2i"]
    if trained:
        pairs = co_like_pairs(data, codes.cutoff, config.q2i_per_user, config.seed)
        check_pairs(pairs, encoder_settings, ", ".join(trained))
