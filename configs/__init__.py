"""One typed settings schema for the whole service, its YAML profiles and the experiments file.

Entry points call :func:`load_settings` once and hand each package its own
sub-settings; library code never reads the environment itself.
"""

from configs.errors import SettingsError
from configs.experiments import Experiment, ExperimentsFile, Variant, load_experiments
from configs.loader import PROFILES_DIR, load_settings, replace_validated
from configs.settings import (
    ApiSettings,
    CatalogSettings,
    QuantizerSettings,
    RankerSettings,
    ServingSettings,
    Settings,
    WorkerSettings,
)

__all__ = [
    "PROFILES_DIR",
    "ApiSettings",
    "CatalogSettings",
    "Experiment",
    "ExperimentsFile",
    "QuantizerSettings",
    "RankerSettings",
    "ServingSettings",
    "Settings",
    "SettingsError",
    "Variant",
    "WorkerSettings",
    "load_experiments",
    "load_settings",
    "replace_validated",
]
