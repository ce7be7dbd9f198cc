"""The object every subcommand receives: the chosen profile and its settings, loaded lazily."""

from __future__ import annotations

from functools import cached_property

from configs import Settings, load_settings


class AppContext:
    """Settings are loaded on first use, so ``--help`` works even with a broken profile."""

    def __init__(self, config: str | None) -> None:
        self.config = config

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config)
