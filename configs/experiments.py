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

import os
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
