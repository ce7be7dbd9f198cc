"""Offline replay evaluation: ID-free (LUCID) against ID-based ranking on real logs.

Composes the encoder, the quantizer and the ranker's online trainer: adapters
read a dataset, :func:`run_protocol` cuts it into rooms, adds sampled impressions
and replays it in time order for every variant (score, then learn), and
:func:`write_report` writes report.json, report.md and the plots. ``lucidrec eval
replay`` is the command line to it.
"""

from api.evaluation.adapters import (
    ADAPTERS,
    Dataset,
    DatasetAdapter,
    DatasetError,
    EvaluationError,
)
from api.evaluation.protocol import ReplayConfig, run_protocol
from api.evaluation.report import write_report
from api.evaluation.variants import DEFAULT_VARIANTS, VARIANTS

__all__ = [
    "ADAPTERS",
    "DEFAULT_VARIANTS",
    "VARIANTS",
    "Dataset",
    "DatasetAdapter",
    "DatasetError",
    "EvaluationError",
    "ReplayConfig",
    "run_protocol",
    "write_report",
]
