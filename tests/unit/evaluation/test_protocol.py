"""The protocol's fixed settings, variant list, event subsets and config checks."""

from __future__ import annotations

import numpy as np
import pytest

from api.cli.evaluation import replay as replay_command
from api.evaluation import DEFAULT_VARIANTS, VARIANTS, EvaluationError, ReplayConfig
from api.evaluation.protocol import event_subsets
from api.evaluation.sampling import Probes
from configs.ranker import RankerSettings


def test_default_variants_and_the_clis_default_agree() -> None:
    assert DEFAULT_VARIANTS == (
        "id_only",
        "lucid_only",
        "hybrid",
        "staged",
        "random_codes",
        "stats_only",
        "dense_content",
        "popularity",
    )
    assert ReplayConfig().variants == DEFAULT_VARIANTS
    option = next(p for p in replay_command.params if p.name == "variants")
    assert option.default == ",".join(DEFAULT_VARIANTS)
    assert {"lucid_unigram", "multimodal", "lucid_q2i"} <= set(VARIANTS) - set(DEFAULT_VARIANTS)
    negatives = next(p for p in replay_command.params if p.name == "negatives")
    assert negatives.default == ReplayConfig().negatives_per_event == 4


def test_variant_settings_fix_the_engagement_half_lives_and_the_content_width() -> None:
    config = ReplayConfig()
    dense = config.ranker_settings(RankerSettings(), "dense_content", content_dim=384)
    assert dense.variant == "dense_content" and dense.content_dim == 384
    assert dense.engagement.half_lives_s == [3600.0, 86400.0, 30 * 86400.0]
    assert config.ranker_settings(RankerSettings(), "stats_only", 8).variant == "stats_only"
    unigram = config.ranker_settings(RankerSettings(), "lucid_unigram", 8)
    assert (unigram.variant, unigram.lucid.keys) == ("lucid_only", "unigram")
    with pytest.raises(EvaluationError, match="variant id_only: the ranker settings are invalid"):
        ReplayConfig(levels=15, codes=1024).ranker_settings(RankerSettings(), "id_only", 8)


def test_bad_configs_name_the_option() -> None:
    with pytest.raises(EvaluationError, match="unknown variant"):
        ReplayConfig(variants=("bogus",))
    with pytest.raises(EvaluationError, match="--negatives"):
        ReplayConfig(negatives_per_event=-1)
    with pytest.raises(EvaluationError, match="--room-window"):
        ReplayConfig(room_window_s=0.0)


def test_ranking_cold_keeps_the_probes_on_rooms_with_few_earlier_events() -> None:
    earlier = np.array([0, 1, 4, 5, 9, 0])
    probes = Probes(np.array([1, 3, 4, 5]), np.zeros((4, 3), dtype=np.int64), short=0)
    events, ranking = event_subsets(earlier, probes, cold_threshold=5)
    assert events["cold"].tolist() == [True, True, True, False, False, True]
    assert events["first"].tolist() == [True, False, False, False, False, True]
    assert events["all"].all()
    assert ranking["ranking"].all()
    assert ranking["ranking_cold"].tolist() == [True, False, False, True]
