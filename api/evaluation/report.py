"""Writes a replay's results: report.json (everything), report.md (the table and settings), PNGs.

The markdown table is the one to paste into an issue: variants x metrics with
95% bootstrap intervals over users, followed by the settings that produced it.
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
]


def _cell(interval: dict[str, float]) -> str:
    if not math.isfinite(interval["value"]):
        return "n/a"
    return f"{interval['value']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"


def markdown(report: dict[str, Any]) -> str:
    """The variants x metrics table with intervals, then counts, notes and settings."""
    header = " | ".join(f"{subset} {metric}" for subset, metric in COLUMNS)
    lines = [
        f"# Replay evaluation: {report['dataset']}",
        "",
        "95% bootstrap intervals over users in brackets. `all`: every event; `cold`: the",
        "item had fewer than 5 earlier events; `first`: the item's first event; `ranking`:",
        "last-period positives against 100 sampled negatives.",
        "",
        f"| variant | {header} | seconds |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for name, result in report["variants"].items():
        cells = [_cell(result["metrics"][subset][metric]) for subset, metric in COLUMNS]
        lines.append(f"| {name} | {' | '.join(cells)} | {result['seconds']:.0f} |")
    lines += ["", "## Counts", ""]
    lines += [f"- {key}: {value}" for key, value in report["counts"].items()]
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
