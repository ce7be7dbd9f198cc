"""Offline replay evaluation: ID-free (LUCID) against ID-based ranking on real logs.

Composes the encoder, the quantizer and the ranker's online trainer: adapters
read a dataset, :func:`run_protocol` replays it in time order for every variant
(predict, then train), and :func:`write_report` writes report.json, report.md and
the plots. ``lucidrec eval replay`` is the command line to it.
"""

from api.evaluation.adapters import (
    ADAPTERS,
    Dataset,
    DatasetAdapter,
    DatasetError,
    EvaluationError,
)
from api.evaluation.protocol import VARIANTS, ReplayConfig, run_protocol
from api.evaluation.report import write_report

__all__ = [
    "ADAPTERS",
    "VARIANTS",
    "Dataset",
    "DatasetAdapter",
    "DatasetError",
    "EvaluationError",
    "ReplayConfig",
    "run_protocol",
    "write_report",
]
