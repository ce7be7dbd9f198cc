"""Embedding sources: files and shard folders, streamed, validated row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantizer import EmbeddingSource, QuantizerError


def test_shards_stream_in_order_and_sample(tmp_path: Path) -> None:
    x = np.arange(60, dtype=np.float64).reshape(20, 3)
    np.save(tmp_path / "a.npy", x[:7])
    np.save(tmp_path / "b.npy", x[7:])
    source = EmbeddingSource.open(tmp_path)
    assert len(source) == 20 and source.dim == 3
    batches = list(source.batches(4))
    assert all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), x.astype(np.float32))
    np.testing.assert_array_equal(source.take(np.array([0, 6, 7, 19])), x[[0, 6, 7, 19]])
    sample = source.sample(5, seed=0)
    assert sample.shape == (5, 3) and len({r.tobytes() for r in sample}) == 5
    np.testing.assert_array_equal(source.sample(50, seed=0), x.astype(np.float32))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(5, np.float32), "2-d"),
        (np.zeros((5, 3), np.int64), "float vectors"),
        (np.zeros((5, 0), np.float32), "dimension 0"),
    ],
)
def test_bad_arrays_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(QuantizerError, match=message):
        EmbeddingSource.open(tmp_path / "x.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_row_is_named(tmp_path: Path, bad: float) -> None:
    x = np.ones((10, 3), np.float32)
    x[6, 1] = bad
    np.save(tmp_path / "x.npy", x)
    source = EmbeddingSource.open(tmp_path / "x.npy")
    with pytest.raises(QuantizerError, match="row 6 holds NaN or inf"):
        source.validate(batch_size=4)
    with pytest.raises(QuantizerError, match="row 6"):
        source.sample(10, seed=0)


def test_unreadable_empty_and_missing_inputs(tmp_path: Path) -> None:
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(QuantizerError, match=r"not a readable \.npy"):
        EmbeddingSource.open(tmp_path / "junk.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizerError, match=r"holds no \.npy shards"):
        EmbeddingSource.open(tmp_path / "empty")
    with pytest.raises(QuantizerError, match="no such file"):
        EmbeddingSource.open(tmp_path / "missing.npy")


def test_shards_of_different_dimension_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(QuantizerError, match="disagree on the dimension"):
        EmbeddingSource.open(tmp_path)
