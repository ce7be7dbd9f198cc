"""The catalog store: rooms, slices, codes, the codebook registry, processed ids, the event log."""

from workers.catalog.errors import CatalogUnavailableError
from workers.catalog.store import Catalog
from workers.catalog.views import (
    CodebookRecord,
    DeadLetter,
    LogEntry,
    RoomView,
    SliceRecord,
    SliceView,
)

__all__ = [
    "Catalog",
    "CatalogUnavailableError",
    "CodebookRecord",
    "DeadLetter",
    "LogEntry",
    "RoomView",
    "SliceRecord",
    "SliceView",
]
