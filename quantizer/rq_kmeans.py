"""RQ-KMeans: level l runs k-means on the residuals the levels before it left.

A scikit-learn-like estimator::

    model = RQKMeans(levels=4, codes=64, seed=0)
    codebook = model.fit(vectors)            # or fit(EmbeddingSource.open("shards/"))
    codes = model.encode(vectors)            # (n, 4) int32 in [0, 64)
    approx = model.decode(codes)

Each level's k-means sees at most ``codes * max_points_per_centroid`` vectors,
drawn once (with the seed) from the input, which is what keeps fitting 10M+
vectors cheap: a larger sample buys little once every centroid has ~1000 points.

With a parent codebook (a retrain), every level starts from the parent's
centroids and the result is aligned to them by Hungarian matching on centroid
distance, so code ``k`` keeps meaning roughly what it meant: codes stay stable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from configs.settings import QuantizerSettings
from quantizer.codebook import Codebook
from quantizer.embeddings import EmbeddingSource
from quantizer.errors import CodebookError, QuantizerError
from quantizer.kmeans import gpu_available, nearest, train_kmeans


def align_to_parent(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``new`` centroids permuted so that row k is the one matched to ``old[k]``.

    Hungarian matching on squared centroid distance: the assignment of least
    total movement, so a code keeps its index across retrains where the data allow.
    """
    cost = ((new[:, None, :] - old[None, :, :]) ** 2).sum(-1)
    new_idx, old_idx = linear_sum_assignment(cost)
    aligned = np.empty_like(new)
    aligned[old_idx] = new[new_idx]
    return aligned


@dataclass
class RQKMeans:
    """Residual k-means quantizer; the fitted result is :attr:`codebook_`."""

    levels: int = 4
    codes: int = 64
    seed: int = 0
    niter: int = 25
    init: str = "kmeans++"
    nredo: int = 3
    max_points_per_centroid: int = 1024
    beam_width: int = 1
    device: str = "auto"
    progress: bool = True
    codebook_: Codebook | None = None

    @classmethod
    def from_settings(cls, settings: QuantizerSettings, **overrides: object) -> RQKMeans:
        fields = {
            name: getattr(settings, name)
            for name in (
                "levels",
                "codes",
                "seed",
                "niter",
                "init",
                "nredo",
                "max_points_per_centroid",
                "beam_width",
                "device",
            )
        }
        return cls(**(fields | overrides))

    def params(self) -> dict[str, object]:
        """The fit settings recorded in a codebook's metadata."""
        params = asdict(self)
        for transient in ("codebook_", "progress"):
            params.pop(transient)
        return params

    def fit(self, data: np.ndarray | EmbeddingSource, parent: Codebook | None = None) -> Codebook:
        """Fit on ``data`` (array or source) and return the new codebook."""
        source = data if isinstance(data, EmbeddingSource) else EmbeddingSource.from_array(data)
        if len(source) < self.codes:
            raise QuantizerError(
                f"{len(source)} vectors cannot fit {self.codes} centroids per level; "
                f"give at least {self.codes} vectors or lower --codes"
            )
        if parent is not None and (parent.levels, parent.codes, parent.dim) != (
            self.levels,
            self.codes,
            source.dim,
        ):
            raise CodebookError(
                f"parent codebook is L={parent.levels} N={parent.codes} dim={parent.dim}, "
                f"this fit is L={self.levels} N={self.codes} dim={source.dim}: "
                "match them or retrain without a parent"
            )
        residual = source.sample(self.codes * self.max_points_per_centroid, self.seed)
        use_gpu = self.device == "auto" and gpu_available()
        centroids = np.empty((self.levels, self.codes, source.dim), dtype=np.float32)
        bar = tqdm(range(self.levels), desc="RQ-KMeans", unit="level", disable=not self.progress)
        for level in bar:
            warm = parent.centroids[level] if parent is not None else None
            level_c = train_kmeans(
                residual,
                self.codes,
                niter=self.niter,
                seed=self.seed + level,
                init=self.init,
                nredo=self.nredo,
                init_centroids=warm,
                use_gpu=use_gpu,
            )
            if warm is not None:
                level_c = align_to_parent(level_c, warm)
            centroids[level] = level_c
            residual -= level_c[nearest(residual, level_c)]
            bar.set_postfix(level=level + 1, mse=f"{float((residual**2).sum(1).mean()):.4g}")
        self.codebook_ = Codebook(
            centroids=centroids,
            seed=self.seed,
            n_train=len(source),
            fit=self.params() | {"n_sample": len(residual), "gpu": use_gpu},
            parent_version=parent.version if parent is not None else None,
        )
        return self.codebook_

    def _fitted(self) -> Codebook:
        if self.codebook_ is None:
            raise QuantizerError("this RQKMeans is not fitted yet: call fit() first")
        return self.codebook_

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes (n, L) of ``x`` with this model's beam width."""
        return self._fitted().encode(x, self.beam_width)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction of ``codes``."""
        return self._fitted().decode(codes)
