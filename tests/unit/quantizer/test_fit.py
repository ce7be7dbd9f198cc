"""Fitting: determinism, level structure, warm-started retraining, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from quantizer import CodebookError, EmbeddingSource, QuantizerError, RQKMeans, quality_report
from quantizer.kmeans import kmeans_plus_plus
from quantizer.rq_kmeans import align_to_parent
from tests.conftest import clustered_vectors

SMALL = {"levels": 3, "codes": 8, "niter": 10, "progress": False}


def test_fit_is_deterministic_for_a_seed(vectors: np.ndarray) -> None:
    a = RQKMeans(seed=5, **SMALL).fit(vectors)
    b = RQKMeans(seed=5, **SMALL).fit(vectors)
    c = RQKMeans(seed=6, **SMALL).fit(vectors)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.version != c.version or not np.array_equal(a.centroids, c.centroids)
    assert not np.array_equal(a.centroids, c.centroids)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_each_level_lowers_the_error(vectors: np.ndarray, init: str) -> None:
    book = RQKMeans(init=init, nredo=2, **SMALL).fit(vectors)
    report = quality_report(book, EmbeddingSource.from_array(vectors))
    mse = [row["mse"] for row in report["per_level"]]
    assert mse == sorted(mse, reverse=True) and mse[-1] < 0.8 * mse[0]
    assert all(row["utilisation"] == 1.0 for row in report["per_level"])
    assert book.n_train == len(vectors) and book.fit["init"] == init


def test_fit_sample_is_capped_by_points_per_centroid(vectors: np.ndarray) -> None:
    book = RQKMeans(max_points_per_centroid=100, **SMALL).fit(vectors)
    assert book.fit["n_sample"] == 800 and book.n_train == 4000


def test_fewer_vectors_than_codes_is_refused() -> None:
    with pytest.raises(QuantizerError, match="cannot fit 8 centroids"):
        RQKMeans(**SMALL).fit(np.zeros((7, 4), np.float32))


def test_parent_of_another_shape_is_refused(vectors: np.ndarray) -> None:
    parent = RQKMeans(**SMALL).fit(vectors)
    with pytest.raises(CodebookError, match="match them or retrain without a parent"):
        RQKMeans(**(SMALL | {"codes": 16})).fit(vectors, parent=parent)


def test_warm_retrain_churns_far_less_than_a_cold_one() -> None:
    data = clustered_vectors(20000, 32, 200, seed=11)
    source = EmbeddingSource.from_array(data)
    params = {"levels": 3, "codes": 16, "progress": False}
    parent = RQKMeans(seed=0, **params).fit(data)
    warm = RQKMeans(seed=1, **params).fit(data, parent=parent)
    cold = RQKMeans(seed=1, **params).fit(data)
    warm_churn = [r["churn"] for r in quality_report(warm, source, parent)["per_level"]]
    cold_churn = [r["churn"] for r in quality_report(cold, source, parent)["per_level"]]
    assert warm.parent_version == parent.version and cold.parent_version is None
    assert warm_churn[0] < 0.05 and cold_churn[0] > 0.5
    assert all(w < c / 3 for w, c in zip(warm_churn, cold_churn, strict=True))


def test_alignment_undoes_a_permutation() -> None:
    old = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    shuffled = old[np.random.default_rng(1).permutation(10)] + 1e-3
    np.testing.assert_allclose(align_to_parent(shuffled, old), old + 1e-3, rtol=1e-6)


def test_kmeans_plus_plus_picks_distinct_data_points() -> None:
    x = clustered_vectors(500, 8, 5, seed=2)
    centres = kmeans_plus_plus(x, 5, np.random.default_rng(0))
    assert len({c.tobytes() for c in centres}) == 5
    assert all((np.abs(x - c).sum(1) == 0).any() for c in centres)


def test_kmeans_plus_plus_survives_fewer_distinct_points_than_k() -> None:
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    assert kmeans_plus_plus(x, 5, np.random.default_rng(0)).shape == (5, 3)


def test_encode_before_fit_says_what_to_do() -> None:
    with pytest.raises(QuantizerError, match="call fit"):
        RQKMeans().encode(np.zeros((1, 4), np.float32))
