"""A/B assignment: deterministic per user, proportional to the weights, independent by salt."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from api.experiments import Assigner, assign, pick_variant, unit_hash
from configs import ExperimentsFile, Settings, WatchedExperiments, load_experiments

FILE = """experiments:
  - name: ranker
    salt: s1
    variants:
      - {name: staged, weight: 50}
      - {name: lucid, weight: 30, overrides: {ranker: {variant: lucid_only}}}
      - {name: ids, weight: 20, overrides: {ranker: {variant: id_only}}}
  - name: diversity
    salt: s2
    variants:
      - {name: low, weight: 1, overrides: {serving: {mmr_lambda: 0.9}}}
      - {name: high, weight: 1, overrides: {serving: {mmr_lambda: 0.5}}}
"""


@pytest.fixture
def experiments(tmp_path: Path) -> ExperimentsFile:
    path = tmp_path / "e.yaml"
    path.write_text(FILE)
    return load_experiments(path)


def test_assignment_is_stable_and_carries_overrides(experiments: ExperimentsFile) -> None:
    first = assign(experiments, Settings(), "user-42")
    assert assign(experiments, Settings(), "user-42") == first
    ranker, diversity = first.label.split("+")
    assert ranker.startswith("ranker:") and diversity.startswith("diversity:")
    expected = {"ranker:staged": "staged", "ranker:lucid": "lucid_only", "ranker:ids": "id_only"}
    assert first.settings.ranker.variant == expected[ranker]
    assert (
        first.settings.serving.mmr_lambda
        == {"diversity:low": 0.9, "diversity:high": 0.5}[diversity]
    )


def test_split_is_within_two_percent_of_the_weights_over_10k_users(
    experiments: ExperimentsFile,
) -> None:
    counts = Counter(pick_variant(experiments.experiments[0], f"u{i}").name for i in range(10_000))
    for name, weight in (("staged", 0.5), ("lucid", 0.3), ("ids", 0.2)):
        assert abs(counts[name] / 10_000 - weight) < 0.02


def test_experiments_with_different_salts_split_independently(
    experiments: ExperimentsFile,
) -> None:
    pairs = Counter(
        (
            pick_variant(experiments.experiments[0], f"u{i}").name,
            pick_variant(experiments.experiments[1], f"u{i}").name,
        )
        for i in range(10_000)
    )
    # P(staged and high) = 0.5 * 0.5 when the two hashes are independent
    assert abs(pairs[("staged", "high")] / 10_000 - 0.25) < 0.02


def test_unit_hash_lies_in_the_unit_interval() -> None:
    values = [unit_hash("salt", str(i)) for i in range(1000)]
    assert all(0.0 <= v < 1.0 for v in values) and len(set(values)) == 1000


def test_assigner_follows_a_reloaded_file(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(FILE)
    watched = WatchedExperiments(path, Settings(), check_interval_s=0.0)
    assigner = Assigner(watched)
    assert assigner("u1").label.count("+") == 1
    path.write_text("experiments: []\n")
    watched.reload()
    assert assigner("u1").label == "default"
