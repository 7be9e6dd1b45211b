"""Settings: defaults < ~/.heddle/config.yaml < HEDDLE_* environment < CLI flags."""

from pathlib import Path

import pytest

from heddle.config import Settings, config_path, load_settings
from heddle.models.errors import ConfigError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))  # conftest already cleared HEDDLE_* variables
    return tmp_path


def write_config(home: Path, text: str) -> Path:
    path = home / ".heddle" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file(home):
    s = load_settings()
    assert s == Settings(data_dir=Path(home) / ".heddle")
    assert config_path() == home / ".heddle" / "config.yaml"


def test_rising_priority_file_env_cli(home, monkeypatch):
    write_config(home, "fleet: office\npolicy: fast\nseed: 7\n")
    assert load_settings().fleet == "office"
    monkeypatch.setenv("HEDDLE_FLEET", "small")
    monkeypatch.setenv("HEDDLE_SEED", "11")
    s = load_settings()
    assert (s.fleet, s.policy, s.seed) == ("small", "fast", 11)  # env beats file, file beats default
    s = load_settings({"fleet": "demo", "seed": None})
    assert (s.fleet, s.seed) == ("demo", 11)  # a flag beats env; an absent flag changes nothing


def test_heddle_config_points_elsewhere(home, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("electricity_usd_per_kwh: 0.31\n")
    monkeypatch.setenv("HEDDLE_CONFIG", str(other))
    assert load_settings().electricity_usd_per_kwh == 0.31


def test_bad_file_value_names_file_line_and_field(home):
    path = write_config(home, "fleet: office\nseed: lots\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: seed: .*integer"):
        load_settings()
    write_config(home, "fleet: office\nplicy: fast\n")
    with pytest.raises(ConfigError, match=r":2: plicy: unknown field"):
        load_settings()


def test_bad_env_value_names_the_variable(home, monkeypatch):
    monkeypatch.setenv("HEDDLE_ELECTRICITY_USD_PER_KWH", "-1")
    with pytest.raises(ConfigError, match="HEDDLE_ELECTRICITY_USD_PER_KWH='-1'"):
        load_settings()


def test_bad_cli_value_names_the_flag(home):
    with pytest.raises(ConfigError, match="--output"):
        load_settings({"output": "xml"})


def test_empty_or_non_mapping_file(home):
    write_config(home, "")
    assert load_settings().fleet == "demo"
    write_config(home, "- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_settings()
