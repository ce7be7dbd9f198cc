"""Settings: profiles, environment overrides, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs import PROFILES_DIR, Settings, SettingsError, load_settings, replace_validated


@pytest.mark.parametrize("profile", ["default", "production", "test"])
def test_every_bundled_profile_loads(profile: str) -> None:
    settings = load_settings(profile, env={})
    assert isinstance(settings, Settings)
    assert "{data_dir}" not in settings.catalog.url


def test_default_profile_is_the_embedded_default_under_data_dir() -> None:
    settings = load_settings("default", env={})
    assert settings.quantizer.levels == 4 and settings.quantizer.codes == 64
    assert settings.catalog.url == "sqlite:///.lucidrec/catalog.db"
    assert settings.workers.broker_url.startswith("sqla+sqlite:///.lucidrec/")


def test_production_profile_points_at_redis_and_postgresql() -> None:
    settings = load_settings("production", env={})
    assert settings.workers.broker_url.startswith("redis://")
    assert settings.catalog.url.startswith("postgresql")
    assert settings.api.shared_state_url.startswith("redis://")  # replicas share sessions


def test_env_overrides_nest_with_double_underscore_and_coerce_types() -> None:
    env = {
        "LUCIDREC_QUANTIZER__LEVELS": "6",
        "LUCIDREC_RANKER__LUCID__LEVELS": "6",
        "LUCIDREC_SERVING__EXPLORATION": "false",
        "LUCIDREC_API__API_KEYS": "[k1, k2]",
        "LUCIDREC_DATA_DIR": "/srv/x",
        "OTHER": "ignored",
    }
    settings = load_settings("default", env=env)
    assert settings.quantizer.levels == settings.ranker.lucid.levels == 6
    assert settings.serving.exploration is False
    assert settings.api.api_keys == ["k1", "k2"]
    assert settings.catalog.url == "sqlite:////srv/x/catalog.db"


def test_profile_can_come_from_the_environment() -> None:
    assert load_settings(env={"LUCIDREC_CONFIG": "test"}).quantizer.codes == 8


def test_bad_env_value_names_key_and_variable() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings("default", env={"LUCIDREC_QUANTIZER__LEVELS": "0"})
    assert str(err.value).startswith("quantizer.levels: expected `int` >= 1")
    assert "LUCIDREC_QUANTIZER__LEVELS" in str(err.value)


def test_bad_yaml_value_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("serving:\n  mmr_lambda: 1.5\n")
    with pytest.raises(SettingsError, match=r"^serving\.mmr_lambda: expected .*<= 1\.0.*p\.yaml"):
        load_settings(path, env={})


def test_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("quantizer:\n  levls: 3\n")
    with pytest.raises(SettingsError, match=r"^quantizer\.levls: unknown setting"):
        load_settings(path, env={})


def test_wrong_type_for_a_variant_name_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"ranker\.variant"):
        load_settings("default", env={"LUCIDREC_RANKER__VARIANT": "ids"})


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "top level must be a mapping"), ("a: [", "not valid YAML")],
)
def test_malformed_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(path, env={})


def test_unknown_profile_lists_the_bundled_ones() -> None:
    with pytest.raises(SettingsError, match="bundled: default, production, test"):
        load_settings("nope", env={})


def test_bundled_profiles_live_beside_the_schema() -> None:
    assert (PROFILES_DIR / "default.yaml").is_file()


def test_replace_validated_checks_the_new_values() -> None:
    section = Settings().quantizer
    assert replace_validated(section, codes=32, seed=None).codes == 32
    with pytest.raises(SettingsError, match="codes"):
        replace_validated(section, codes=1)


def test_bad_mapping_key_is_named_with_its_mapping() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings("default", env={"LUCIDREC_ENCODER__TEXT__FIELD_BUDGET": "{bogus: 3}"})
    assert str(err.value).startswith("encoder.text.field_budget: invalid enum value 'bogus'")


def test_a_sections_own_check_names_the_variable_that_broke_it() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings("default", env={"LUCIDREC_RANKER__BACKBONE__HEADS": "3"})
    assert str(err.value).startswith("ranker.backbone: ")
    assert "LUCIDREC_RANKER__BACKBONE__HEADS" in str(err.value)


def test_a_content_width_that_differs_from_the_encoders_is_refused_naming_both_keys() -> None:
    with pytest.raises(SettingsError, match=r"ranker.content_dim \(64\).*encoder.out_dim \(128\)"):
        load_settings("default", env={"LUCIDREC_RANKER__CONTENT_DIM": "64"})


@pytest.mark.parametrize("key", ["levels", "codes"])
def test_a_quantizer_shape_the_ranker_cannot_read_is_refused_naming_both_keys(key: str) -> None:
    env = {f"LUCIDREC_QUANTIZER__{key.upper()}": "6"}
    with pytest.raises(SettingsError, match=rf"quantizer.{key} \(6\).*ranker.lucid.{key} "):
        load_settings("default", env=env)
