"""The replay protocol: fixed settings, event subsets, probes, one replay per variant, metrics.

Everything that could be tuned is fixed in :class:`ReplayConfig` before the replay
and written into the report; nothing looks at the evaluation period's labels
except the metrics. All variants see the same events, probes and seed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from api.evaluation.adapters import Dataset, EvaluationError
from api.evaluation.codes import ItemCodes
from api.evaluation.metrics import event_metrics, rank_of_positive, ranking_metrics
from api.evaluation.replay import Probes, Stream, replay
from configs import EncoderSettings
from configs.loader import deep_merge
from configs.ranker import RankerSettings

# name -> (ranker variant, LUCID keys, code source)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "id_only": ("id_only", "prefix", "text"),
    "lucid_only": ("lucid_only", "prefix", "text"),
    "lucid_unigram": ("lucid_only", "unigram", "text"),
    "hybrid": ("hybrid", "prefix", "text"),
    "staged": ("staged", "prefix", "text"),
    "random_codes": ("lucid_only", "prefix", "random"),
    "multimodal": ("lucid_only", "prefix", "multimodal"),
    "lucid_q2i": ("lucid_only", "prefix", "text_q2i"),
}

# Fixed before any replay: a small ranker with the click head only; rows never expire
# (items live for months, not minutes); age buckets span an hour to half a year; the
# item-ID token is on for 100 steps (25.6k events at batch 256), then ramps out over 100.
RANKER_OVERRIDES: dict[str, Any] = {
    "tasks": {"names": ["click"]},
    "sparse": {"dim": 16, "ttl_s": 10 * 365 * 86400.0},
    "backbone": {"width": 32, "layers": 1, "heads": 2},
    "history": {"length": 20},
    "training": {"batch_size": 256},
    "warmup": {"id_on_steps": 100, "id_ramp_steps": 100},
    "age_buckets_s": [3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, 90 * 86400.0, 180 * 86400.0],
}


@dataclass(frozen=True)
class ReplayConfig:
    """Every knob of a run; recorded verbatim in the report."""

    variants: tuple[str, ...] = tuple(VARIANTS)
    seed: int = 0
    levels: int = 3
    codes: int = 16
    cold_threshold: int = 5
    negatives: int = 100
    max_probes: int = 2000
    periods: int = 10
    resamples: int = 200
    q2i_per_user: int = 2
    ranker: dict[str, Any] = field(default_factory=lambda: dict(RANKER_OVERRIDES))

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise EvaluationError(
                f"unknown variant(s) {unknown or 'none given'}; choose from {', '.join(VARIANTS)}"
            )

    def ranker_settings(self, base: RankerSettings, name: str) -> RankerSettings:
        variant, keys, _ = VARIANTS[name]
        tree = deep_merge(msgspec.to_builtins(base), self.ranker)
        tree = deep_merge(
            tree,
            {
                "variant": variant,
                "lucid": {"levels": self.levels, "codes": self.codes, "keys": keys},
                "training": {"seed": self.seed},
            },
        )
        return msgspec.convert(tree, RankerSettings)


def earlier_events(item: np.ndarray) -> np.ndarray:
    """For each event, how many earlier events its item had (0: the item is first seen)."""
    earlier = np.zeros(len(item), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, key in enumerate(item.tolist()):
        earlier[i] = seen.get(key, 0)
        seen[key] = earlier[i] + 1
    return earlier


def code_usage(codes: np.ndarray, n_codes: int) -> dict[str, list[float]]:
    """Per level: the share of the N codes in use, and perplexity / N (1 = perfectly even)."""
    usage: dict[str, list[float]] = {"utilisation": [], "perplexity": []}
    for level in range(codes.shape[1]):
        p = np.bincount(codes[:, level], minlength=n_codes) / len(codes)
        entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
        usage["utilisation"].append(float((p > 0).mean()))
        usage["perplexity"].append(float(np.exp(entropy) / n_codes))
    return usage


def sample_probes(data: Dataset, config: ReplayConfig, period: np.ndarray) -> Probes:
    """Last-period positives (at most ``max_probes``), each with ``negatives`` sampled items.

    Negatives are items that had appeared before the event and that the user never
    interacted with in the whole log; the draw is fixed by the seed.
    """
    rng = np.random.default_rng(config.seed)
    candidates = np.flatnonzero((period == config.periods - 1) & (data.label > 0))
    if len(candidates) > config.max_probes:
        candidates = np.sort(rng.choice(candidates, config.max_probes, replace=False))
    first = np.full(len(data.slices), np.inf)
    np.minimum.at(first, data.item, data.ts)
    touched: dict[str, set[int]] = {}
    for user, item in zip(data.user.tolist(), data.item.tolist(), strict=True):
        touched.setdefault(user, set()).add(item)
    events, rows = [], []
    for e in candidates.tolist():
        pool = np.setdiff1d(np.flatnonzero(first < data.ts[e]), list(touched[data.user[e]]))
        if len(pool) >= config.negatives:
            rows.append([data.item[e], *rng.choice(pool, config.negatives, replace=False)])
            events.append(e)
    items = np.asarray(rows, dtype=np.int64).reshape(-1, config.negatives + 1)
    return Probes(np.asarray(events, dtype=np.int64), items)


def notes(config: ReplayConfig) -> list[str]:
    """The protocol's fixed choices in words, for report.md."""
    return [
        "each item is a room with one slice (room LUCID = slice LUCID)",
        "ranker: the click head only (tasks.names = [click]); label = the dataset's binary "
        "label (MovieLens: rating >= the label threshold)",
        "progressive validation: each chunk of training.batch_size events is predicted, "
        "then trained on (one optimizer step per chunk)",
        "room age: time since the room's start_time when the items file gives one, "
        "else since the item's first event in the log",
        "context: hour and weekday from the timestamp (UTC), other features from the "
        "log's columns of the same name, else 0",
        f"codebook: RQ-KMeans L={config.levels} x N={config.codes}, fitted on the items "
        "with an event in the first half of the time range only; all items encoded with it",
        "encoders: text = MiniLM (or encoder.text.path) with a randomly initialised "
        "projector, untrained; multimodal adds a small SigLIP vision tower with RANDOM "
        "weights (no pretrained SigLIP offline), so it measures the pipeline, not SigLIP's "
        "knowledge; text_q2i = the text encoder after Q2I training (encoder.train settings) "
        f"on up to {config.q2i_per_user} liked-item -> next-liked-item pairs per user from "
        "the first half of the time range only",
        "random_codes, multimodal and lucid_q2i use the lucid_only ranker (prefix keys), as "
        "does lucid_unigram (unigram keys): each differs from lucid_only in one thing",
        f"ranking probes: up to {config.max_probes} last-period positives, each against "
        f"{config.negatives} items that appeared before it and that the user never touched",
        f"intervals: {config.resamples} bootstrap resamples of users, percentile 95%",
        f"nothing was tuned on this run's data; seed {config.seed}",
    ]


def run_protocol(
    data: Dataset,
    config: ReplayConfig,
    base_ranker: RankerSettings,
    encoder_settings: EncoderSettings,
    work_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Replay every variant and return the report's content (metrics, curves, settings)."""
    if len(data) < 10 * config.periods:
        raise EvaluationError(
            f"{len(data)} events are too few to replay in {config.periods} periods; "
            f"give at least {10 * config.periods}"
        )
    settings = {name: config.ranker_settings(base_ranker, name) for name in config.variants}
    stream = Stream.build(data, next(iter(settings.values())))
    mid = data.ts[0] + (data.ts[-1] - data.ts[0]) / 2
    codes = ItemCodes(
        data,
        mid,
        encoder_settings,
        config.levels,
        config.codes,
        config.seed,
        work_dir,
        q2i_per_user=config.q2i_per_user,
        progress=progress,
    )
    period = np.minimum(np.arange(len(data)) * config.periods // len(data), config.periods - 1)
    probes = sample_probes(data, config, period)
    earlier = earlier_events(data.item)
    subsets = {"all": earlier >= 0, "cold": earlier < config.cold_threshold, "first": earlier == 0}
    _, users = np.unique(data.user, return_inverse=True)
    results: dict[str, Any] = {}
    for name in config.variants:
        lucid = codes.lucid(VARIANTS[name][2])  # encodes on first use; not in the timing
        start = time.perf_counter()
        chunk = settings[name].training.batch_size
        probs, scores = replay(
            stream, lucid, settings[name], probes, chunk=chunk, desc=name, progress=progress
        )
        metrics = {
            subset: {
                k: v.as_dict()
                for k, v in event_metrics(
                    users[mask],
                    data.label[mask],
                    probs[mask],
                    resamples=config.resamples,
                    seed=config.seed,
                ).items()
            }
            for subset, mask in subsets.items()
        }
        rank = rank_of_positive(scores[:, 0], scores[:, 1:])
        metrics["ranking"] = {
            k: v.as_dict()
            for k, v in ranking_metrics(
                users[probes.event],
                rank,
                n_users=int(users.max()) + 1,
                resamples=config.resamples,
                seed=config.seed,
            ).items()
        }
        per_period = [
            event_metrics(
                users[period == p],
                data.label[period == p],
                probs[period == p],
                resamples=0,  # curves show the values; the intervals are in the table
                seed=config.seed,
            )
            for p in range(config.periods)
        ]
        results[name] = {
            "metrics": metrics,
            "by_period": {
                metric: [row[metric].value for row in per_period]
                for metric in ("auc", "gauc", "logloss")
            },
            "seconds": time.perf_counter() - start,  # replay and metrics
            "ranker": msgspec.to_builtins(settings[name]),
        }
    return {
        "dataset": data.name,
        "notes": notes(config),
        "config": asdict(config),
        "counts": {
            "events": len(data),
            "users": int(users.max()) + 1,
            "items": len(data.slices),
            "positives": int(data.label.sum()),
            "cold_events": int(subsets["cold"].sum()),
            "first_seen_events": int(subsets["first"].sum()),
            "probes": len(probes.event),
            "codebook_fit_items": len(codes.fit_items),
        },
        "period_ends": [float(data.ts[period == p].max()) for p in range(config.periods)],
        "code_usage": {
            source: code_usage(codes.lucid(source), config.codes)
            for source in dict.fromkeys(VARIANTS[v][2] for v in config.variants)
        },
        "quantizer_reports": codes.reports,
        "q2i_training": codes.q2i_report,
        "variants": results,
    }
