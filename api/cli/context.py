"""The object every subcommand receives: the chosen profile and its settings, loaded lazily."""

from __future__ import annotations

from functools import cached_property

from configs import Settings, load_settings


class AppContext:
    """Settings are loaded on first use, so ``--help`` works even with a broken profile."""

    def __init__(self, config: str | None) -> None:
        self.config = config

    def use_config(self, config: str | None) -> None:
        """A subcommand's own ``--config`` (``serve --config FILE``) wins over the group's."""
        if config is not None:
            self.config = config
            self.__dict__.pop("settings", None)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config)
