"""Writes a replay's results: report.json (everything), report.md (the tables and settings), PNGs.

The markdown tables are the ones to paste into an issue: variants x metrics with
95% bootstrap intervals over users, then each variant's paired difference from
id_only (bold where the interval excludes 0), followed by the settings that
produced them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display; must come before pyplot's import
import matplotlib.pyplot as plt

COLUMNS = [
    ("all", "auc"),
    ("all", "gauc"),
    ("all", "logloss"),
    ("cold", "auc"),
    ("cold", "gauc"),
    ("cold", "logloss"),
    ("first", "auc"),
    ("first", "gauc"),
    ("first", "logloss"),
    ("ranking", "ndcg@10"),
    ("ranking", "recall@10"),
    ("ranking_cold", "ndcg@10"),
    ("ranking_cold", "recall@10"),
]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _cell(interval: dict[str, float]) -> str:
    if not _finite(interval["value"]):
        return "n/a"
    return f"{interval['value']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"


def _difference(interval: dict[str, float]) -> str:
    """A paired difference; bold where its interval excludes 0."""
    if not _finite(interval["diff"]) or not _finite(interval["low"]):
        return "n/a"
    text = f"{interval['diff']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}]"
    return f"**{text}**" if interval["low"] > 0 or interval["high"] < 0 else text


def _table(rows: dict[str, list[str]], last: str | None = None) -> list[str]:
    header = " | ".join(f"{subset} {metric}" for subset, metric in COLUMNS)
    width = len(COLUMNS) + 1 + (last is not None)
    lines = [f"| variant | {header} |" + (f" {last} |" if last else ""), "|---" * width + "|"]
    return lines + [f"| {name} | {' | '.join(cells)} |" for name, cells in rows.items()]


def markdown(report: dict[str, Any]) -> str:
    """The variants x metrics table with intervals, the paired comparisons, then counts,
    notes and settings."""
    config, counts = report["config"], report["counts"]
    window = config["room_window_s"]
    regime = "rooms of items" if window is None else f"rooms of at most {window:g} s"
    lines = [
        f"# Replay evaluation: {report['dataset']}",
        "",
        f"Regime: {regime} ({counts['rooms']} rooms). Sampled impressions: "
        f"K = {counts['negatives_per_event']} per logged event, "
        f"{counts['sampled_impressions']} in all.",
    ]
    if report["popularity_half_life_s"] is not None:
        lines.append(
            f"Popularity: decayed engagements at a half-life of "
            f"{report['popularity_half_life_s']:g} s."
        )
    lines += [
        "",
        "95% bootstrap intervals over users in brackets. Event metrics are over the logged",
        f"events only. `all`: every event; `cold`: the room had fewer than "
        f"{config['cold_threshold']} earlier",
        "events; `first`: the room's first event; `ranking`: last-period positives against",
        f"{config['probe_negatives']} sampled rooms; `ranking_cold`: those whose room had "
        f"fewer than {config['cold_threshold']}",
        "earlier events.",
        "",
    ]
    lines += _table(
        {
            name: [
                *(_cell(result["metrics"][subset][metric]) for subset, metric in COLUMNS),
                f"{result['seconds']:.0f}",
            ]
            for name, result in report["variants"].items()
        },
        last="seconds",
    )
    if report["comparisons"]:
        lines += [
            "",
            "## Paired comparisons against id_only",
            "",
            "Variant minus id_only, with a 95% paired bootstrap interval (the same resampled",
            "users on both sides); **bold**: the interval excludes 0.",
            "",
        ]
        lines += _table(
            {
                name: [_difference(diff[subset][metric]) for subset, metric in COLUMNS]
                for name, diff in report["comparisons"].items()
            }
        )
    lines += ["", "## Counts", ""]
    lines += [f"- {key}: {value}" for key, value in counts.items()]
    lines += ["", "## Code usage per level (share of codes in use; perplexity / N)", ""]
    lines += [
        f"- {source}: {', '.join(f'{u:.2f}' for u in usage['utilisation'])}; "
        f"{', '.join(f'{p:.2f}' for p in usage['perplexity'])}"
        for source, usage in report["code_usage"].items()
    ]
    lines += ["", "## Settings (fixed before the replay)", ""]
    lines += [f"- {note}" for note in report["notes"]]
    lines += ["", "```json", json.dumps(report["config"], indent=2), "```", ""]
    return "\n".join(lines)


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """AUC, GAUC and logloss per time period (equal event counts), one line per variant."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    periods = range(1, report["config"]["periods"] + 1)
    for ax, metric in zip(axes, ("auc", "gauc", "logloss"), strict=True):
        for name, result in report["variants"].items():
            ax.plot(periods, result["by_period"][metric], marker="o", markersize=3, label=name)
        ax.set(xlabel="period (equal event counts, in time order)", ylabel=metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Progressive validation over time: {report['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_code_usage(report: dict[str, Any], path: Path) -> None:
    """Per level and code source: share of the N codes in use, and perplexity / N."""
    usage = report["code_usage"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(len(usage), 1)
    for ax, key in zip(axes, ("utilisation", "perplexity"), strict=True):
        for i, (source, values) in enumerate(usage.items()):
            levels = range(1, len(values[key]) + 1)
            offsets = [level + (i - (len(usage) - 1) / 2) * width for level in levels]
            ax.bar(offsets, values[key], width, label=source)
        ax.set_xticks(list(levels))
        ax.set(
            xlabel="level",
            ylim=(0, 1.05),
            ylabel=f"{key} / N" if key != "utilisation" else "codes in use / N",
        )
        ax.set_title(f"LUCID code {key} per level")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _json_safe(node: Any) -> Any:
    """NaN (a metric undefined on its subset) as null, so report.json is strict JSON."""
    if isinstance(node, float) and not math.isfinite(node):
        return None
    if isinstance(node, dict):
        return {key: _json_safe(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_json_safe(value) for value in node]
    return node


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """report.json, report.md, metrics_over_time.png and code_usage.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    names = ("report.json", "report.md", "metrics_over_time.png", "code_usage.png")
    paths = [out / name for name in names]
    paths[0].write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False), encoding="utf-8")
    paths[1].write_text(markdown(report), encoding="utf-8")
    plot_curves(report, paths[2])
    plot_code_usage(report, paths[3])
    return paths
