"""The experiments file: A/B toggles as named experiments with weighted variants.

Each variant may override settings of the ``ranker`` and ``serving`` sections
(the ranker variant and the per-request knobs). Overrides are validated against
the settings schema when the file is loaded, so a typo fails at load time with
the key's full path, not when a user hashed into that variant is served.

Example::

    experiments:
      - name: id_retirement
        salt: "2026-11-a"
        variants:
          - {name: control, weight: 50}
          - name: lucid_only
            weight: 50
            overrides: {ranker: {variant: lucid_only}, serving: {mmr_lambda: 0.6}}
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from configs.errors import SettingsError
from configs.loader import (
    convert_settings,
    deep_merge,
    describe_validation_error,
    read_yaml_mapping,
)
from configs.settings import Settings

logger = logging.getLogger(__name__)

# The sections a variant may change per user; everything else is per deployment.
OVERRIDABLE_SECTIONS = ("ranker", "serving")

Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Variant(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One arm: its share of users (relative weight) and its setting overrides."""

    name: Name
    weight: Annotated[float, Meta(gt=0.0)]
    overrides: dict[str, Any] = msgspec.field(default_factory=dict)

    def apply(self, base: Settings) -> Settings:
        """``base`` with this variant's overrides laid over it."""
        return apply_overrides(base, self.overrides, source=f"variant {self.name!r}")


class Experiment(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A named experiment; ``salt`` makes its user split independent of other experiments'."""

    name: Name
    salt: Annotated[str, Meta(min_length=1)]
    enabled: bool = True
    variants: Annotated[list[Variant], Meta(min_length=1)]


class ExperimentsFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The whole file."""

    experiments: list[Experiment] = msgspec.field(default_factory=list)


def apply_overrides(base: Settings, overrides: Mapping[str, Any], *, source: str) -> Settings:
    """Validate ``overrides`` (only the overridable sections) and merge them into ``base``."""
    for section in overrides:
        if section not in OVERRIDABLE_SECTIONS:
            raise SettingsError(
                f"{source}: overrides may only set {', '.join(OVERRIDABLE_SECTIONS)}, "
                f"not {section!r}"
            )
    merged = deep_merge(msgspec.to_builtins(base), overrides)
    return convert_settings(merged, source=source)


def load_experiments(path: str | os.PathLike[str], base: Settings | None = None) -> ExperimentsFile:
    """Parse and fully validate an experiments file against ``base`` settings."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"experiments file {str(path)!r} does not exist")
    raw = read_yaml_mapping(path)
    try:
        parsed = msgspec.convert(raw, ExperimentsFile)
    except msgspec.ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, str(path), {})) from None
    base = base or Settings()
    _check_unique([e.name for e in parsed.experiments], f"{path}: experiment")
    for i, experiment in enumerate(parsed.experiments):
        _check_unique([v.name for v in experiment.variants], f"{path}: experiments[{i}] variant")
        for j, variant in enumerate(experiment.variants):
            try:
                variant.apply(base)
            except SettingsError as exc:
                raise SettingsError(
                    f"{path}: experiments[{i}].variants[{j}].overrides: {exc}"
                ) from None
    return parsed


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SettingsError(f"{what} name {name!r} appears twice")
        seen.add(name)


def ranker_variants(experiments: ExperimentsFile, base: Settings) -> set[str]:
    """Every ranker variant an enabled experiment can route users to, and the default one.

    The trainer trains each of these on all events; the API serves each.
    """
    variants = {base.ranker.variant}
    for experiment in experiments.experiments:
        if experiment.enabled:
            variants |= {v.apply(base).ranker.variant for v in experiment.variants}
    return variants


class WatchedExperiments:
    """The experiments file in force, reloaded when it changes or on SIGHUP.

    A file that fails to load leaves the previous configuration in force and
    logs the error (kept in :attr:`last_error`), so a typo never takes a
    running service down. Checking costs one ``stat`` per ``check_interval_s``.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None, base: Settings, check_interval_s: float = 1.0
    ) -> None:
        self.path = Path(path) if path else None
        self.base = base
        self.check_interval_s = check_interval_s
        self.current = ExperimentsFile()
        self.generation = 0  # bumps on every successful load
        self.loaded_mtime: float | None = None
        self.last_error: str | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        if self.path is not None:
            self.reload()

    def reload(self) -> bool:
        """Load the file now; False (old config kept, error logged) if it does not load."""
        if self.path is None:
            return False
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
                parsed = load_experiments(self.path, self.base)
            except (OSError, SettingsError) as exc:
                self.last_error = str(exc)
                logger.error("experiments file not reloaded, keeping the previous one: %s", exc)
                return False
            self.current, self.loaded_mtime, self.last_error = parsed, mtime, None
            self.generation += 1
        logger.info(
            "experiments loaded from %s: %d experiment(s)", self.path, len(parsed.experiments)
        )
        return True

    def maybe_reload(self) -> None:
        """Reload if the file's modification time changed since the last load."""
        now = time.monotonic()
        if self.path is None or now < self._next_check:
            return
        self._next_check = now + self.check_interval_s
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return
        if mtime != self.loaded_mtime:
            self.reload()

    def install_sighup(self) -> None:
        """Reload on SIGHUP (only from the main thread, where handlers can be installed)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: self.reload())

    def ranker_variants(self) -> set[str]:
        self.maybe_reload()
        return ranker_variants(self.current, self.base)
