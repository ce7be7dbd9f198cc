"""The experiments file: weighted variants whose overrides are validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs import PROFILES_DIR, Settings, SettingsError, load_experiments


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_text(text)
    return path


def test_bundled_example_is_valid_and_overrides_apply() -> None:
    parsed = load_experiments(PROFILES_DIR / "experiments.yaml")
    experiment = parsed.experiments[0]
    assert [v.name for v in experiment.variants] == ["staged", "lucid_only", "lucid_only_diverse"]
    diverse = experiment.variants[2].apply(Settings())
    assert diverse.ranker.variant == "lucid_only"
    assert diverse.serving.mmr_lambda == 0.6
    assert experiment.variants[0].apply(Settings()).ranker.variant == "staged"


def test_bad_override_value_names_its_full_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "experiments:\n  - name: e\n    salt: s\n    variants:\n"
        "      - {name: a, weight: 1}\n"
        "      - {name: b, weight: 1, overrides: {ranker: {variant: nope}}}\n",
    )
    with pytest.raises(SettingsError, match=r"experiments\[0\]\.variants\[1\]\.overrides.*ranker"):
        load_experiments(path)


def test_overrides_outside_ranker_and_serving_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "experiments:\n  - name: e\n    salt: s\n    variants:\n"
        "      - {name: a, weight: 1, overrides: {catalog: {url: x}}}\n",
    )
    with pytest.raises(SettingsError, match="may only set ranker, serving"):
        load_experiments(path)


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ("[{name: a, weight: 0}]", r"weight: expected `float` > 0"),
        ("[{name: a, weight: 1}, {name: a, weight: 2}]", "variant name 'a' appears twice"),
        ("[]", r"variants: expected `array` of length >= 1"),
        ("[{name: 'has space', weight: 1}]", r"name: expected `str` matching"),
    ],
)
def test_invalid_variants_are_refused(tmp_path: Path, variants: str, message: str) -> None:
    path = write(tmp_path, f"experiments:\n  - name: e\n    salt: s\n    variants: {variants}\n")
    with pytest.raises(SettingsError, match=message):
        load_experiments(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_experiments(tmp_path / "none.yaml")
