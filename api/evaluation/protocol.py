"""The replay protocol: fixed settings, rooms, sampled impressions, subsets, probes, metrics.

Everything that could be tuned is fixed in :class:`ReplayConfig` before the replay
and written into the report; nothing looks at the evaluation period's labels
except the metrics. All variants see the same rows, probes and seed, and their
intervals and paired differences come from the same bootstrap draws of users.
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
from api.evaluation.metrics import (
    Resampled,
    event_statistics,
    rank_of_positive,
    ranking_statistics,
    resample,
    user_weights,
)
from api.evaluation.popularity import Popularity
from api.evaluation.prerequisites import check_prerequisites
from api.evaluation.replay import ClickModel, Stream, replay
from api.evaluation.rooms import Rooms
from api.evaluation.sampling import Probes, Touched, sample_impressions, sample_probes
from api.evaluation.variants import DEFAULT_VARIANTS, REFERENCE, VARIANTS
from configs import EncoderSettings
from configs.loader import deep_merge
from configs.ranker import RankerSettings

# Fixed before any replay: a small ranker with the click head only; rows never expire
# (items live for months, not minutes); age buckets span an hour to half a year; the
# item-ID token is on for 100 steps (25.6k stream rows at batch 256, sampled impressions
# included), then ramps out over 100; engagement counts decay with half-lives of an hour,
# a day and 30 days (rooms under --room-window live a day, MovieLens items for months).
RANKER_OVERRIDES: dict[str, Any] = {
    "tasks": {"names": ["click"]},
    "sparse": {"dim": 16, "ttl_s": 10 * 365 * 86400.0},
    "backbone": {"width": 32, "layers": 1, "heads": 2},
    "history": {"length": 20},
    "training": {"batch_size": 256},
    "warmup": {"id_on_steps": 100, "id_ramp_steps": 100},
    "age_buckets_s": [3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, 90 * 86400.0, 180 * 86400.0],
    "engagement": {"half_lives_s": [3600.0, 86400.0, 30 * 86400.0]},
}


@dataclass(frozen=True)
class ReplayConfig:
    """Every knob of a run; recorded verbatim in the report.

    ``negatives_per_event``: sampled impressions (label 0) added after each logged
    event; ``probe_negatives``: rooms each ranking probe's positive is ranked
    against; ``room_window_s``: None keys rooms by item, else the longest a room
    lives (see :mod:`api.evaluation.rooms`).
    """

    variants: tuple[str, ...] = DEFAULT_VARIANTS
    seed: int = 0
    levels: int = 3
    codes: int = 16
    cold_threshold: int = 5
    negatives_per_event: int = 4
    probe_negatives: int = 100
    max_probes: int = 2000
    periods: int = 10
    resamples: int = 1000
    q2i_per_user: int = 2
    room_window_s: float | None = None
    ranker: dict[str, Any] = field(default_factory=lambda: dict(RANKER_OVERRIDES))

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise EvaluationError(
                f"unknown variant(s) {unknown or 'none given'}; choose from {', '.join(VARIANTS)}"
            )
        if self.negatives_per_event < 0:
            raise EvaluationError(f"--negatives must be 0 or more, got {self.negatives_per_event}")
        if self.room_window_s is not None and not self.room_window_s > 0:
            raise EvaluationError(
                f"--room-window must be positive seconds, got {self.room_window_s}"
            )

    def ranker_settings(self, base: RankerSettings, name: str, content_dim: int) -> RankerSettings:
        """The ranker settings of variant ``name``: the profile's, the fixed overrides, the
        variant's own; ``content_dim`` is the width of the rooms' content embeddings."""
        spec = VARIANTS[name]
        tree = deep_merge(msgspec.to_builtins(base), self.ranker)
        own: dict[str, Any] = {
            "lucid": {"levels": self.levels, "codes": self.codes, "keys": spec.keys},
            "training": {"seed": self.seed},
            "content_dim": content_dim,
        }
        if spec.ranker is not None:
            own["variant"] = spec.ranker
        try:
            return msgspec.convert(deep_merge(tree, own), RankerSettings)
        except msgspec.ValidationError as exc:
            raise EvaluationError(
                f"variant {name}: the ranker settings are invalid ({exc}); change --levels, "
                "--codes or the profile's ranker section"
            ) from exc


def earlier_events(room: np.ndarray) -> np.ndarray:
    """For each event, how many earlier events its room had (0: the room is first seen)."""
    earlier = np.zeros(len(room), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, key in enumerate(room.tolist()):
        earlier[i] = seen.get(key, 0)
        seen[key] = earlier[i] + 1
    return earlier


def event_subsets(
    earlier: np.ndarray, probes: Probes, cold_threshold: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Masks of the logged events (all, cold, first) and of the probes (ranking,
    ranking_cold) by their room's ``earlier`` events: cold is fewer than ``cold_threshold``,
    first is none."""
    events = {"all": earlier >= 0, "cold": earlier < cold_threshold, "first": earlier == 0}
    ranking = {
        "ranking": np.ones(len(probes.event), dtype=bool),
        "ranking_cold": earlier[probes.event] < cold_threshold,
    }
    return events, ranking


def code_usage(codes: np.ndarray, n_codes: int) -> dict[str, list[float]]:
    """Per level: the share of the N codes in use, and perplexity / N (1 = perfectly even)."""
    usage: dict[str, list[float]] = {"utilisation": [], "perplexity": []}
    for level in range(codes.shape[1]):
        p = np.bincount(codes[:, level], minlength=n_codes) / len(codes)
        entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
        usage["utilisation"].append(float((p > 0).mean()))
        usage["perplexity"].append(float(np.exp(entropy) / n_codes))
    return usage


def notes(config: ReplayConfig, half_life_s: float) -> list[str]:
    """The protocol's fixed choices in words, for report.md."""
    k = config.negatives_per_event
    if config.room_window_s is None:
        rooms = "each item is a room with one slice (room LUCID = slice LUCID)"
    else:
        rooms = (
            f"rooms (--room-window {config.room_window_s:g} s): time is cut into "
            f"{config.room_window_s:g} s slots from the Unix epoch, and an item's events in "
            "one slot form one room, live for the whole slot (so a room can be shown before "
            "its first pick); a room keeps its item's text, codes and embedding (one "
            "encoding and one codebook per item), while room keys, room age (since the "
            "slot's start), earlier events (cold, first-seen), availability and engagement "
            "counts are per room"
        )
    return [
        rooms,
        "ranker: the click head only (tasks.names = [click]); label = the dataset's binary "
        "label (MovieLens: rating >= the label threshold)",
        f"sampled impressions: after each logged event, {k} impressions with label 0 for the "
        "same user, time and context, drawn (seeded, uniformly, without replacement) from "
        "the rooms available then whose item the user never touched in the whole log; "
        "fewer where that pool is smaller. The learned variants and popularity learn from "
        "logged and sampled rows; every event metric is over the logged events only. "
        f"Why {k}: the ranking probes ask which of a user's available rooms gets picked and "
        "liked, which a model trained only on logged (picked) items never sees; 4 per event "
        "is the default ratio of sampled implicit negatives in the NCF paper (He et al., "
        "2017), and it keeps the replay at 5x the logged events; fixed before any run",
        "progressive validation: each chunk of training.batch_size stream rows is scored, "
        "then trained on (one optimizer step per chunk); the staged ID warmup counts these "
        "steps, so it spans sampled rows too",
        "room age and availability: from the room's start_time when the items file gives "
        "one (item rooms), a room's slot start under --room-window, else from the item's "
        "first event in the log",
        "context: hour and weekday from the timestamp (UTC), other features from the "
        "log's columns of the same name, else 0",
        "engagement statistics (every learned variant): decayed counts of impressions and "
        "clicks per room and room-LUCID prefix, half-lives 1 h, 1 d and 30 d (MovieLens "
        "items live for months, rooms under --room-window a day), read before each chunk "
        "is counted",
        f"popularity: no model; a room's decayed count of engagements at the longest "
        f"half-life ({half_life_s:g} s), counted like the trainer's (score a chunk, then count "
        "it); its scores are not probabilities, so its logloss is n/a",
        f"codebook: RQ-KMeans L={config.levels} x N={config.codes}, fitted on the items "
        "with an event in the first half of the time range only; all items encoded with it",
        "encoders: text = MiniLM (or encoder.text.path) with a randomly initialised "
        "projector, untrained; dense_content reads these text embeddings directly (through "
        "the ranker's projection) instead of their codes; multimodal adds a small SigLIP "
        "vision tower with RANDOM weights (no pretrained SigLIP offline), so it measures the "
        "pipeline, not SigLIP's knowledge; text_q2i = the text encoder after Q2I training "
        f"(encoder.train settings) on up to {config.q2i_per_user} liked-item -> "
        "next-liked-item pairs per user from the first half of the time range only",
        "random_codes, multimodal and lucid_q2i use the lucid_only ranker (prefix keys), as "
        "does lucid_unigram (unigram keys): each differs from lucid_only in one thing",
        f"ranking probes: up to {config.max_probes} last-period positives, each against "
        f"{config.probe_negatives} rooms available at its time whose item the user never "
        "touched (positives with fewer such rooms are left out first); ranking_cold: the "
        f"probes whose room had fewer than {config.cold_threshold} earlier events",
        f"intervals: {config.resamples} bootstrap resamples of users, percentile 95%; "
        f"comparisons: each variant minus {REFERENCE} on the same resampled user weights "
        "(a paired bootstrap)",
        f"nothing was tuned on this run's data; seed {config.seed}",
    ]


def _intervals(values: dict[str, Resampled], key: str = "value") -> dict[str, dict[str, float]]:
    """Values and 95% intervals as report.json writes them; ``key`` names the estimate."""
    out = {}
    for name, resampled in values.items():
        interval = resampled.interval()
        out[name] = {key: interval.value, "low": interval.low, "high": interval.high}
    return out


def run_protocol(
    data: Dataset,
    config: ReplayConfig,
    base_ranker: RankerSettings,
    encoder_settings: EncoderSettings,
    work_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Replay every variant and return the report's content (metrics, comparisons, curves,
    settings). Every variant's prerequisites are checked before anything is encoded."""
    settings = {
        name: config.ranker_settings(base_ranker, name, encoder_settings.out_dim)
        for name in config.variants
    }
    mid = data.ts[0] + (data.ts[-1] - data.ts[0]) / 2 if len(data) else 0.0
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
    check_prerequisites(data, config, codes, encoder_settings)
    any_settings = next(iter(settings.values()))
    rooms = Rooms.build(data, config.room_window_s)
    _, users = np.unique(data.user, return_inverse=True)
    n_users = int(users.max()) + 1
    touched = Touched(users, data.item, len(data.slices))
    sampled = sample_impressions(
        users, data.ts, rooms, touched, config.negatives_per_event, config.seed
    )
    stream = Stream.build(data, rooms, sampled, any_settings)
    period = np.minimum(np.arange(len(data)) * config.periods // len(data), config.periods - 1)
    probes = sample_probes(
        np.flatnonzero((period == config.periods - 1) & (data.label > 0)),
        users,
        data.ts,
        rooms.event_room,
        rooms,
        touched,
        negatives=config.probe_negatives,
        max_probes=config.max_probes,
        seed=config.seed,
    )
    subsets, probe_subsets = event_subsets(
        earlier_events(rooms.event_room), probes, config.cold_threshold
    )
    weights = user_weights(n_users, config.resamples, config.seed)
    half_life_s = any_settings.engagement.half_lives_s[-1]
    results: dict[str, Any] = {}
    resampled: dict[str, dict[str, dict[str, Resampled]]] = {}
    for name in config.variants:
        spec = VARIANTS[name]
        # encodes on first use; not in the timing
        lucid = (
            codes.lucid(spec.codes)
            if spec.codes is not None
            else np.zeros((len(data.slices), config.levels), dtype=np.int64)
        )
        content = codes.embeddings("text") if spec.content else None
        start = time.perf_counter()
        scorer = Popularity(settings[name]) if spec.ranker is None else ClickModel(settings[name])
        scores, probe_scores = replay(
            stream,
            scorer,
            probes,
            lucid,
            content,
            chunk=settings[name].training.batch_size,
            desc=name,
            progress=progress,
        )
        probabilities = spec.ranker is not None
        rank = rank_of_positive(probe_scores[:, 0], probe_scores[:, 1:])
        statistics = {
            subset: event_statistics(
                users[mask], data.label[mask], scores[mask], n_users, probabilities=probabilities
            )
            for subset, mask in subsets.items()
        } | {
            subset: ranking_statistics(users[probes.event[mask]], rank[mask], n_users)
            for subset, mask in probe_subsets.items()
        }
        resampled[name] = {
            subset: {metric: resample(statistic, weights) for metric, statistic in stats.items()}
            for subset, stats in statistics.items()
        }
        results[name] = {
            "metrics": {subset: _intervals(values) for subset, values in resampled[name].items()},
            "by_period": _curves(
                users, data.label, scores, period, config.periods, n_users, probabilities
            ),
            "seconds": time.perf_counter() - start,  # replay and metrics
            "ranker": msgspec.to_builtins(settings[name]) if probabilities else None,
        }
        if not probabilities:
            results[name]["half_life_s"] = half_life_s
    # paired: both sides' draws come from the same resampled user weights
    comparisons = {
        name: {
            subset: _intervals(
                {
                    metric: values - resampled[REFERENCE][subset][metric]
                    for metric, values in metrics.items()
                },
                "diff",
            )
            for subset, metrics in resampled[name].items()
        }
        for name in config.variants
        if name != REFERENCE and REFERENCE in resampled
    }
    return {
        "dataset": data.name,
        "notes": notes(config, half_life_s),
        "config": asdict(config),
        "counts": _counts(data, config, rooms, users, sampled, subsets, probes, probe_subsets)
        | {"codebook_fit_items": len(codes.fit_items)},
        "popularity_half_life_s": half_life_s if "popularity" in config.variants else None,
        "period_ends": [float(data.ts[period == p].max()) for p in range(config.periods)],
        "code_usage": {
            source: code_usage(codes.lucid(source), config.codes)
            for source in dict.fromkeys(VARIANTS[v].codes for v in config.variants)
            if source is not None
        },
        "quantizer_reports": codes.reports,
        "q2i_training": codes.q2i_report,
        "variants": results,
        "comparisons": comparisons,
    }


def _curves(
    users: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    period: np.ndarray,
    periods: int,
    n_users: int,
    probabilities: bool,
) -> dict[str, list[float]]:
    """AUC, GAUC and logloss of each period's events (the values only: the table has the
    intervals)."""
    everyone = np.ones(n_users)
    rows = [
        event_statistics(
            users[period == p],
            labels[period == p],
            scores[period == p],
            n_users,
            probabilities=probabilities,
        )
        for p in range(periods)
    ]
    return {metric: [row[metric](everyone) for row in rows] for metric in rows[0]}


def _counts(
    data: Dataset,
    config: ReplayConfig,
    rooms: Rooms,
    users: np.ndarray,
    sampled: np.ndarray,
    subsets: dict[str, np.ndarray],
    probes: Probes,
    probe_subsets: dict[str, np.ndarray],
) -> dict[str, Any]:
    filled = (sampled >= 0).sum(axis=1)
    return {
        "events": len(data),
        "users": int(users.max()) + 1,
        "items": len(data.slices),
        "rooms": len(rooms),
        "room_window_s": config.room_window_s,
        "positives": int(data.label.sum()),
        "negatives_per_event": config.negatives_per_event,
        "sampled_impressions": int(filled.sum()),
        "events_short_of_negatives": int((filled < config.negatives_per_event).sum()),
        "cold_events": int(subsets["cold"].sum()),
        "first_seen_events": int(subsets["first"].sum()),
        "probes": len(probes.event),
        "ranking_cold_probes": int(probe_subsets["ranking_cold"].sum()),
        "probe_candidates_short": probes.short,
    }
