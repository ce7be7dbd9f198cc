"""Load :class:`Settings`: struct defaults < YAML profile < ``LUCIDREC_`` environment overrides.

A profile is a bundled name (``default``, ``production``, ``test``) or a path to a
YAML file. An environment variable ``LUCIDREC_A__B=value`` sets ``a.b`` (``__``
nests); values are parsed as YAML, so numbers, booleans and lists work.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from configs.errors import SettingsError
from configs.settings import Settings

PROFILES_DIR = Path(__file__).resolve().parent
ENV_PREFIX = "LUCIDREC_"
# Selects the profile itself, so it is not a settings key.
PROFILE_VAR = "LUCIDREC_CONFIG"

Section = TypeVar("Section", bound=msgspec.Struct)


def load_settings(
    config: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Settings:
    """Return the settings of ``config`` with ``env`` (default: the process environment) applied.

    Raises :class:`SettingsError` naming the key and the problem for any bad value.
    """
    env = os.environ if env is None else env
    path = resolve_profile(config or env.get(PROFILE_VAR) or "default")
    raw = read_yaml_mapping(path)
    env_paths: dict[tuple[str, ...], str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == PROFILE_VAR:
            continue
        keys = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not all(keys):
            raise SettingsError(f"{name}: empty key segment; use LUCIDREC_SECTION__KEY")
        set_path(raw, keys, parse_env_value(value))
        env_paths[keys] = name
    return convert_settings(raw, source=str(path), env_paths=env_paths)


def resolve_profile(config: str | os.PathLike[str]) -> Path:
    """A bundled profile name or a YAML path, refused with a clear message if it is neither."""
    candidate = Path(config)
    if candidate.suffix not in (".yaml", ".yml"):
        bundled = PROFILES_DIR / f"{config}.yaml"
        if bundled.is_file():
            return bundled
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml") if p.stem != "experiments")
    raise SettingsError(
        f"config {str(config)!r}: no such file and no bundled profile of that name "
        f"(bundled: {', '.join(names)})"
    )


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping (an empty file is an empty one)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read ({exc})") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: the top level must be a mapping of settings")
    return data


def parse_env_value(value: str) -> Any:
    """Lists and mappings are YAML; scalars stay strings and are coerced to the field's type."""
    if value.lstrip().startswith(("[", "{")):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def set_path(tree: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    """Set ``tree[k0][k1]...`` = value, creating mappings on the way."""
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new mapping: ``base`` with ``override`` laid over it, recursing into mappings."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def expand_data_dir(node: Any, data_dir: str) -> Any:
    """Replace ``{data_dir}`` in every string of a parsed settings tree."""
    if isinstance(node, str):
        return node.replace("{data_dir}", data_dir)
    if isinstance(node, dict):
        return {key: expand_data_dir(value, data_dir) for key, value in node.items()}
    if isinstance(node, list):
        return [expand_data_dir(value, data_dir) for value in node]
    return node


def convert_settings(
    raw: Mapping[str, Any],
    *,
    source: str,
    env_paths: Mapping[tuple[str, ...], str] | None = None,
) -> Settings:
    """Validate a raw settings tree into :class:`Settings`, or raise one :class:`SettingsError`."""
    # Defaults hold "{data_dir}" too: materialise them under the raw tree, then expand.
    tree = deep_merge(msgspec.to_builtins(Settings()), raw)
    if isinstance(tree["data_dir"], str):
        tree = expand_data_dir(tree, tree["data_dir"])
    try:
        return msgspec.convert(tree, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, source, env_paths or {})) from None


# msgspec ends a message with " - at `$.a.b`", or " - at `key` in `$.a.b`" for a bad mapping key
_WHERE = re.compile(r" - at (?P<is_key>`key` in )?`\$(?P<path>[^`]*)`$")


def describe_validation_error(
    exc: msgspec.ValidationError, source: str, env_paths: Mapping[tuple[str, ...], str]
) -> str:
    """Turn msgspec's ``Expected ... - at `$.a.b``` into ``a.b: expected ... (in SOURCE)``."""
    message = str(exc)
    match = _WHERE.search(message)
    problem = message[: match.start()] if match else message
    key = match["path"].lstrip(".") if match else ""
    if match and match["is_key"]:
        problem = f"{problem} (as a key)"
    if problem.startswith("Object contains unknown field"):
        field = problem.split("`")[1]
        key = f"{key}.{field}" if key else field
        problem = "unknown setting"
    problem = problem[:1].lower() + problem[1:]
    path = tuple(key.replace("[", ".").split(".")) if key else ()
    # an error on a section (its own checks) names the variable that set a key inside it
    origin = env_paths.get(path) or next(
        (name for keys, name in env_paths.items() if path and keys[: len(path)] == path), None
    )
    where_from = f"from {origin}" if origin else f"in {source}"
    return f"{key or '(top level)'}: {problem} ({where_from})"


def replace_validated(section: Section, **changes: Any) -> Section:
    """A copy of a settings section with ``changes`` applied and validated (None means keep)."""
    tree = msgspec.to_builtins(section) | {k: v for k, v in changes.items() if v is not None}
    try:
        return msgspec.convert(tree, type(section))
    except msgspec.ValidationError as exc:
        source = f"{type(section).__name__} override"
        raise SettingsError(describe_validation_error(exc, source, {})) from None
