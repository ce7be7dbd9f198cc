"""The catalog store: rooms, slices, codes, the codebook registry and processed ids."""

from workers.catalog.store import Catalog
from workers.catalog.views import CodebookRecord, RoomView, SliceRecord, SliceView

__all__ = ["Catalog", "CodebookRecord", "RoomView", "SliceRecord", "SliceView"]
