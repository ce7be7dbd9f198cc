"""RQ-KMeans quantizer: 128-d slice embeddings -> hierarchical LUCID codes.

A library with numpy inputs and outputs: fit, encode, decode, the room-level
vote, versioned codebook folders, the quality report and warm-started retraining.
"""

from quantizer.codebook import Codebook
from quantizer.embeddings import EmbeddingSource
from quantizer.errors import CodebookError, QuantizerError
from quantizer.offline import encode_file, retrain
from quantizer.report import quality_report, report_table
from quantizer.rq_kmeans import RQKMeans, align_to_parent
from quantizer.vote import format_lucid, parse_lucid, room_lucid

__all__ = [
    "Codebook",
    "CodebookError",
    "EmbeddingSource",
    "QuantizerError",
    "RQKMeans",
    "align_to_parent",
    "encode_file",
    "format_lucid",
    "parse_lucid",
    "quality_report",
    "report_table",
    "retrain",
    "room_lucid",
]
