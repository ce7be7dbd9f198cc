"""Encode/decode: shapes, ranges, agreement with the plain residual algorithm, beam search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantizer import Codebook, QuantizerError


def residual_greedy(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Textbook RQ encoding with explicit residuals: the reference for the fast kernel."""
    residual = x.astype(np.float64).copy()
    codes = np.empty((len(x), len(centroids)), dtype=np.int64)
    for level, c in enumerate(centroids.astype(np.float64)):
        dist = ((residual[:, None, :] - c[None]) ** 2).sum(-1)
        codes[:, level] = dist.argmin(1)
        residual -= c[codes[:, level]]
    return codes


def random_codebook(levels: int, codes: int, dim: int, seed: int) -> Codebook:
    rng = np.random.default_rng(seed)
    scale = 0.5 ** np.arange(levels)[:, None, None]
    centroids = (rng.standard_normal((levels, codes, dim)) * scale).astype(np.float32)
    return Codebook(centroids=centroids, seed=seed, n_train=0)


@settings(max_examples=40, deadline=None)
@given(
    levels=st.integers(1, 5),
    codes=st.integers(2, 40),
    dim=st.integers(1, 24),
    n=st.integers(0, 300),
    seed=st.integers(0, 2**16),
)
def test_encode_shapes_ranges_and_decode(levels: int, codes: int, dim: int, n: int, seed: int):
    book = random_codebook(levels, codes, dim, seed)
    x = np.random.default_rng(seed + 1).standard_normal((n, dim)).astype(np.float32)
    out = book.encode(x)
    assert out.shape == (n, levels) and out.dtype == np.int32
    assert ((out >= 0) & (out < codes)).all()
    recon = book.decode(out)
    assert recon.shape == (n, dim) and recon.dtype == np.float32
    for prefix in range(1, levels + 1):
        assert book.decode(out[:, :prefix]).shape == (n, dim)


@settings(max_examples=25, deadline=None)
@given(levels=st.integers(1, 4), codes=st.integers(2, 32), seed=st.integers(0, 2**16))
def test_fast_kernel_matches_explicit_residual_encoding(levels: int, codes: int, seed: int):
    book = random_codebook(levels, codes, 12, seed)
    x = np.random.default_rng(seed).standard_normal((5000, 12)).astype(np.float32)
    agree = (book.encode(x) == residual_greedy(x, book.centroids)).all(axis=1).mean()
    assert agree > 0.999  # float32 vs float64 may flip a near-tie, nothing more


def test_threads_do_not_change_codes() -> None:
    book = random_codebook(4, 64, 32, 0)
    x = np.random.default_rng(1).standard_normal((20000, 32)).astype(np.float32)
    np.testing.assert_array_equal(book.encode(x, threads=1), book.encode(x, threads=2))


def test_beam_of_one_is_greedy_and_wider_beams_lower_the_error() -> None:
    book = random_codebook(4, 16, 8, 3)
    x = np.random.default_rng(4).standard_normal((3000, 8)).astype(np.float32)
    greedy = book.encode(x)
    np.testing.assert_array_equal(book.encode(x, beam_width=1), greedy)
    errors = [
        float(((x - book.decode(book.encode(x, beam_width=b))) ** 2).sum(1).mean())
        for b in (1, 4, 16)
    ]
    assert errors[0] > errors[1] >= errors[2]


def test_wrong_dimension_is_refused() -> None:
    book = random_codebook(2, 4, 8, 0)
    with pytest.raises(QuantizerError, match=r"do not fit this codebook \(dim 8\)"):
        book.encode(np.zeros((3, 9), np.float32))


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (np.array([[0, 4]]), r"lie in \[0, 4\)"),
        (np.array([[-1, 0]]), r"lie in \[0, 4\)"),
        (np.zeros((2, 3), int), r"\(n, 1..2\)"),
        (np.zeros((2, 2), float), "integers"),
    ],
)
def test_bad_codes_are_refused(codes: np.ndarray, message: str) -> None:
    with pytest.raises(QuantizerError, match=message):
        random_codebook(2, 4, 8, 0).decode(codes)
