"""The quality report's figures on a codebook small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantizer import Codebook, EmbeddingSource, quality_report

# level 1 splits on x, level 2 on y: [1, 1] codes (0, 0) exactly, [1, 1.5] codes (0, 0)
# with 0.5 left over in y
CENTROIDS = np.array([[[1, 0], [-1, 0]], [[0, 1], [0, -1]]], dtype=np.float32)
VECTORS = np.array([[1, 1], [1, 1], [-1, -1], [1, 1.5]], dtype=np.float32)


def book(centroids: np.ndarray) -> Codebook:
    return Codebook(centroids=centroids, seed=0, n_train=len(VECTORS))


@pytest.mark.parametrize("batch_size", [1, 3, 1 << 16])  # streamed batches add up exactly
def test_report_figures_match_the_hand_computation(batch_size: int) -> None:
    report = quality_report(
        book(CENTROIDS), EmbeddingSource.from_array(VECTORS), batch_size=batch_size
    )
    first, second = report["per_level"]
    # squared errors after level 1: 1, 1, 1, 2.25; after level 2: 0, 0, 0, 0.25
    assert first["mse"] == pytest.approx(5.25 / 4)
    assert second["mse"] == pytest.approx(0.25 / 4)
    assert first["relative_error"] == pytest.approx(5.25 / 9.25)
    assert second["relative_error"] == pytest.approx(0.25 / 9.25)
    # codes per level: 0, 0, 1, 0 at both levels
    assert first["utilisation"] == second["utilisation"] == 1.0
    expected_perplexity = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert first["perplexity"] == pytest.approx(expected_perplexity)
    assert report["collisions"] == {"distinct_codes": 2, "mean_per_code": 2.0, "max_per_code": 3}
    assert "churn" not in first and report["n_vectors"] == 4


def test_churn_counts_a_changed_prefix_at_its_level_and_every_level_below() -> None:
    swapped_second = CENTROIDS.copy()
    swapped_second[1] = CENTROIDS[1][::-1]  # the parent names level 2's codes the other way
    report = quality_report(
        book(CENTROIDS), EmbeddingSource.from_array(VECTORS), parent=book(swapped_second)
    )
    assert [row["churn"] for row in report["per_level"]] == [0.0, 1.0]
    swapped_first = CENTROIDS.copy()
    swapped_first[0] = CENTROIDS[0][::-1]
    report = quality_report(
        book(CENTROIDS), EmbeddingSource.from_array(VECTORS), parent=book(swapped_first)
    )
    assert [row["churn"] for row in report["per_level"]] == [1.0, 1.0]
