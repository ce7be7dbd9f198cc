"""``workers.bootstrap_min_slices``: when maintenance fits the first codebook."""

from __future__ import annotations

import pytest

from configs import SettingsError, load_settings
from workers.codebooks import first_codebook_slices


def test_unset_it_is_the_fewest_vectors_the_fit_accepts_one_per_code() -> None:
    for profile in ("default", "production", "test"):
        settings = load_settings(profile, env={})
        assert settings.workers.bootstrap_min_slices is None
        assert first_codebook_slices(settings) == settings.quantizer.codes
    assert first_codebook_slices(load_settings("default", env={})) == 64


def test_a_higher_floor_is_kept_and_a_lower_one_refused_naming_both_keys() -> None:
    env = {"LUCIDREC_WORKERS__BOOTSTRAP_MIN_SLICES": "500"}
    assert first_codebook_slices(load_settings("default", env=env)) == 500
    with pytest.raises(SettingsError, match=r"bootstrap_min_slices \(10\).*quantizer.codes \(64\)"):
        load_settings("default", env={"LUCIDREC_WORKERS__BOOTSTRAP_MIN_SLICES": "10"})
