"""Configuration: defaults, TOML file, environment overrides and clear errors."""

from __future__ import annotations

import pytest

from hub.config import ConfigError, load_config


def test_defaults_without_file(tmp_path):
    config = load_config(tmp_path / "none.toml", environ={})
    assert config.web_port == 8080
    assert config.flush_interval == 300
    assert config.source is None


def test_file_then_environment_then_overrides(tmp_path):
    path = tmp_path / "hub.toml"
    path.write_text('web_port = 81\nflush_interval = 60\ndb_password = "s3cret"\n')
    config = load_config(path, environ={"HUB_FLUSH_INTERVAL": "30", "HUB_MDNS_ENABLED": "yes"},
                         overrides={"web_port": 82})
    assert (config.web_port, config.flush_interval, config.mdns_enabled) == (82, 30, True)
    assert config.public()["db_password"] == "***"


def test_unknown_setting_in_file_names_it(tmp_path):
    path = tmp_path / "hub.toml"
    path.write_text("web_prot = 81\n")
    with pytest.raises(ConfigError, match="unknown setting 'web_prot'"):
        load_config(path, environ={})


def test_wrong_type_names_source_and_setting(tmp_path):
    with pytest.raises(ConfigError, match="HUB_WEB_PORT: web_port must be int"):
        load_config(tmp_path / "none.toml", environ={"HUB_WEB_PORT": "eighty"})


def test_invalid_toml_is_reported(tmp_path):
    path = tmp_path / "hub.toml"
    path.write_text("web_port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_config_path_from_environment(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('timezone = "Europe/Paris"\n')
    assert load_config(environ={"HUB_CONFIG": str(path)}).timezone == "Europe/Paris"
