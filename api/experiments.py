"""A/B toggles at serving time: deterministic assignment and a file that reloads itself.

Assignment hashes ``salt:user_id`` (blake2b, 64 bits) to a point in [0, 1) and
picks the variant whose share of the cumulative weights covers it: stable for a
user as long as the salt and weights stay, independent across experiments with
different salts. A user is in one variant of every enabled experiment; their
overrides apply in file order (experiments should steer different knobs; where
two set the same key, the later one wins).

The file itself is watched by :class:`configs.WatchedExperiments` (reload on
change or SIGHUP, a bad file keeps the old configuration).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from configs import Experiment, ExperimentsFile, Settings, Variant, WatchedExperiments


def unit_hash(salt: str, user_id: str) -> float:
    """``salt:user_id`` mapped to [0, 1) by the first 8 bytes of its blake2b digest."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def pick_variant(experiment: Experiment, user_id: str) -> Variant:
    """The variant of ``experiment`` that ``user_id`` falls into."""
    point = unit_hash(experiment.salt, user_id) * sum(v.weight for v in experiment.variants)
    for variant in experiment.variants:
        point -= variant.weight
        if point < 0:
            return variant
    return experiment.variants[-1]


@dataclass(frozen=True)
class Assignment:
    """A user's variants and the settings they produce."""

    label: str  # "experiment:variant" pairs joined by "+", or "default"
    settings: Settings


def assign(experiments: ExperimentsFile, base: Settings, user_id: str) -> Assignment:
    """The user's variant in every enabled experiment, overrides applied in file order."""
    settings, labels = base, []
    for experiment in experiments.experiments:
        if experiment.enabled:
            variant = pick_variant(experiment, user_id)
            settings = variant.apply(settings)
            labels.append(f"{experiment.name}:{variant.name}")
    return Assignment("+".join(labels) or "default", settings)


class Assigner:
    """Assignments against the watched experiments file, cached per file generation."""

    def __init__(self, watched: WatchedExperiments) -> None:
        self.watched = watched
        self._cache: dict[str, Assignment] = {}
        self._generation = -1

    def __call__(self, user_id: str) -> Assignment:
        self.watched.maybe_reload()
        if self._generation != self.watched.generation or len(self._cache) > 100_000:
            self._cache, self._generation = {}, self.watched.generation
        found = self._cache.get(user_id)
        if found is None:
            found = self._cache[user_id] = assign(self.watched.current, self.watched.base, user_id)
        return found
