"""One typed settings schema for the whole service, its YAML profiles and the experiments file.

Entry points call :func:`load_settings` once and hand each package its own
sub-settings; library code never reads the environment itself.
"""

from configs.encoder import EncoderSettings
from configs.errors import SettingsError
from configs.experiments import (
    Experiment,
    ExperimentsFile,
    Variant,
    WatchedExperiments,
    load_experiments,
    ranker_variants,
)
from configs.loader import PROFILES_DIR, load_settings, replace_validated
from configs.ranker import RankerSettings
from configs.settings import (
    ApiSettings,
    CatalogSettings,
    QuantizerSettings,
    ServingSettings,
    Settings,
    WorkerSettings,
)

__all__ = [
    "PROFILES_DIR",
    "ApiSettings",
    "CatalogSettings",
    "EncoderSettings",
    "Experiment",
    "ExperimentsFile",
    "QuantizerSettings",
    "RankerSettings",
    "ServingSettings",
    "Settings",
    "SettingsError",
    "Variant",
    "WatchedExperiments",
    "WorkerSettings",
    "load_experiments",
    "load_settings",
    "ranker_variants",
    "replace_validated",
]
