"""One served ranker per variant, following the trainer's store without restarts.

A :class:`ranker.RankerServer` is opened for a variant once its folder in the
model store holds an intact snapshot of the live run, and :meth:`get` applies
whatever the trainer published since (sparse deltas, dense weights, a newer
snapshot) at most every ``interval_s``, so a request never waits on more than one
cheap directory scan. A variant that cannot be opened (no snapshot yet, or only
damaged ones) is logged with the reason and tried again only once its folder
changed: a damaged snapshot is read in full before it is refused, which must not
happen on every request.

**Lag** (:meth:`ServedModels.lags`, ``lucidrec_sync_lag_seconds``): how long a
server has been behind what the trainer published, i.e. the age of the oldest
file of the live run it has not applied yet (a newer delta or dense file, or the
live run itself when the trainer restarted), 0 once it has applied the newest.
So the lag is 0 on an idle system, however old the newest update is, and grows
only while an update waits: a server that stopped applying, or one that cannot
read what was published. A file's age is taken from its modification time (the
publisher writes it, then renames it into place), so the API's and the model
store's clocks must agree. The publisher keeps only the newest few files of each
kind, so a waiting file may be pruned before it is applied; the time a server
fell behind is therefore remembered until it applies that version, and the lag
keeps growing past the pruning.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ranker import ModelStore, RankerServer, StoreError
from ranker.store import StoreEntry

logger = logging.getLogger(__name__)


class ServedModels:
    def __init__(
        self, store_root: Path, interval_s: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store_root = store_root
        self.interval_s = interval_s
        self.clock = clock
        self._servers: dict[str, RankerServer] = {}
        self._next: dict[str, float] = {}
        self._failed: dict[str, tuple[int, ...]] = {}  # store signature at a failed open
        self._lock = threading.Lock()
        # per variant, per kind of waiting file: (its version, since when the server waits)
        self._behind: dict[str, dict[str, tuple[int, float]]] = {}
        self._lag_lock = threading.Lock()

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

    def lags(self) -> dict[str, float]:
        """Per loaded variant, seconds its server has been behind the newest published file
        (0 once it applied it; see the module docstring)."""
        now = self.clock()
        with self._lag_lock:
            return {
                variant: self._lag(variant, server, now)
                for variant, server in list(self._servers.items())
            }

    def _lag(self, variant: str, server: RankerServer, now: float) -> float:
        waiting = _waiting(server)
        before = self._behind.get(variant, {})
        behind = {}
        for kind, (version, applied, published) in waiting.items():
            seen = before.get(kind)
            if seen is not None and applied < seen[0]:  # what waited then waits still
                behind[kind] = (seen[0], min(seen[1], published))
            else:
                behind[kind] = (version, published)
        self._behind[variant] = behind
        if not behind:
            return 0.0
        return max(0.0, now - min(since for _, since in behind.values()))


def _waiting(server: RankerServer) -> dict[str, tuple[int, int, float]]:
    """The oldest file of each kind the server has not applied: kind -> (its version, the
    version the server applied, its modification time). The kind ``run:<id>`` is a live
    run the server has not switched to (its files, oldest first)."""
    store = server.store
    versions = server.versions()
    live = store.live_run()
    if live is None:
        return {}
    if live != versions.run:
        files = sorted(
            (e for kind in ("snapshots", "deltas", "dense") for e in store.entries(kind, live)),
            key=lambda e: e.version,
        )
        found = _first_stamp(files)
        return {} if found is None else {f"run:{live}": (0, -1, found[1])}
    waiting = {}
    for kind, applied in (("deltas", versions.sparse), ("dense", versions.dense)):
        newer = [e for e in store.entries(kind, live) if e.version > applied]
        found = _first_stamp(newer)
        if found is not None:
            waiting[kind] = (found[0].version, applied, found[1])
    return waiting


def _first_stamp(entries: list[StoreEntry]) -> tuple[StoreEntry, float] | None:
    """The first of ``entries`` still on disk, with its modification time."""
    for entry in entries:
        try:
            return entry, os.stat(entry.path).st_mtime
        except FileNotFoundError:  # pruned since it was listed
            continue
    return None
