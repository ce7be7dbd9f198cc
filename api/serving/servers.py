"""One served ranker per variant, following the trainer's store without restarts.

A :class:`ranker.RankerServer` is opened for a variant once its folder in the
model store holds an intact snapshot of the live run, and :meth:`get` applies
whatever the trainer published since (sparse deltas, dense weights, a newer
snapshot) at most every ``interval_s``, so a request never waits on more than one
cheap directory scan. A variant that cannot be opened (no snapshot yet, or only
damaged ones) is logged with the reason and tried again only once its folder
changed: a damaged snapshot is read in full before it is refused, which must not
happen on every request.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ranker import ModelStore, RankerServer, StoreError

logger = logging.getLogger(__name__)


class ServedModels:
    def __init__(self, store_root: Path, interval_s: float) -> None:
        self.store_root = store_root
        self.interval_s = interval_s
        self._servers: dict[str, RankerServer] = {}
        self._next: dict[str, float] = {}
        self._failed: dict[str, tuple[int, ...]] = {}  # store signature at a failed open
        self._lock = threading.Lock()

    def get(self, variant: str) -> RankerServer | None:
        """The variant's server, refreshed if due; None while it has no intact snapshot."""
        now = time.monotonic()
        server = self._servers.get(variant)
        if server is None:
            with self._lock:
                server = self._servers.get(variant) or self._open(variant)
                if server is not None:
                    self._next[variant] = now + self.interval_s
            return server
        if now >= self._next.get(variant, 0.0):
            self._refresh(variant, server)
        return server

    def _open(self, variant: str) -> RankerServer | None:
        store = ModelStore.open(self.store_root, variant)
        signature = store.signature()
        if self._failed.get(variant) == signature:
            return None  # nothing changed since it failed: it would fail again
        try:
            server = RankerServer(store)
        except StoreError as exc:
            self._failed[variant] = signature
            logger.warning("variant %s: no model to serve: %s", variant, exc)
            return None
        self._servers[variant] = server
        return server

    def refresh_all(self) -> None:
        """Apply what the trainer published to every loaded variant (the background refresh)."""
        for variant, server in list(self._servers.items()):
            self._refresh(variant, server)

    def _refresh(self, variant: str, server: RankerServer) -> None:
        self._next[variant] = time.monotonic() + self.interval_s
        try:
            server.refresh()
        except StoreError as exc:  # a snapshot it cannot use: keep serving what is loaded
            logger.error("variant %s: not applying the store's newest files: %s", variant, exc)

    def loaded(self) -> dict[str, RankerServer]:
        return dict(self._servers)
