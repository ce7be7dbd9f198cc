"""The ranker: collisionless tables, LUCID prefix features, a late-fusion token transformer,
staged item-ID retirement, online incremental training and the served copy.

A library with numpy/torch inputs and outputs; it knows nothing of HTTP, queues or
databases. The workers run an :class:`OnlineTrainer` per variant and the API a
:class:`RankerServer` per variant, both on one model store folder.
"""

from ranker.core import RankerCore
from ranker.engagement import CHANNELS, EngagementCounter, feature_width, positive_channels
from ranker.errors import RankerError, StoreError
from ranker.history import HistoryStore
from ranker.keys import LucidKeys, id_key, id_keys
from ranker.metrics import auc
from ranker.migration import migrate_prefix_rows
from ranker.server import ModelVersions, RankerServer
from ranker.store import ModelStore
from ranker.table import CollisionlessTable, TableDelta
from ranker.trainer import OnlineTrainer, task_targets
from ranker.types import LABELS, Candidates, EventBatch, History, RankRequest, Scores
from ranker.warmup import Warmup, warmup_at

__all__ = [
    "CHANNELS",
    "LABELS",
    "Candidates",
    "CollisionlessTable",
    "EngagementCounter",
    "EventBatch",
    "History",
    "HistoryStore",
    "LucidKeys",
    "ModelStore",
    "ModelVersions",
    "OnlineTrainer",
    "RankRequest",
    "RankerCore",
    "RankerError",
    "RankerServer",
    "Scores",
    "StoreError",
    "TableDelta",
    "Warmup",
    "auc",
    "feature_width",
    "id_key",
    "id_keys",
    "migrate_prefix_rows",
    "positive_channels",
    "task_targets",
    "warmup_at",
]
