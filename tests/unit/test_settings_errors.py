"""A wrong setting is one clear error before any command runs: the setting, the variable that sets it, and why
(``ridecast.config.explain_invalid`` through the CLI's callback), never a traceback from a component."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ridecast.cli import app
from ridecast.config import get_settings


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    import os

    for key in [k for k in os.environ if k.startswith("RIDECAST_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RIDECAST_CONFIG", str(tmp_path / "no-ridecast.toml"))
    monkeypatch.setenv("RIDECAST_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _run(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def test_each_wrong_value_is_named_with_its_variable_and_the_command_does_not_run(clean_env, tmp_path):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    clean_env.setenv("RIDECAST_HOME", str(a_file))
    clean_env.setenv("RIDECAST_SERVING__PORT", "eighty")
    clean_env.setenv("RIDECAST_FLINK__RESTART_STRATEGY", "failure-rate")
    res = _run("status")
    assert res.exit_code == 2, res.output
    said = res.output
    assert "Traceback" not in said and "invalid ridecast settings" in said
    assert f"home [RIDECAST_HOME]: Value error, {a_file} is a file" in said
    assert "serving.port [RIDECAST_SERVING__PORT]: Input should be a valid integer" in said and "'eighty'" in said
    assert "flink.restart_strategy [RIDECAST_FLINK__RESTART_STRATEGY]" in said and "'failure-rate'" in said


def test_a_rule_across_settings_names_its_section(clean_env):
    clean_env.setenv("RIDECAST_FLINK__RESTART_STRATEGY", "exponential-delay")
    clean_env.setenv("RIDECAST_FLINK__RESTART_DELAY_S", "0")
    res = _run("sql", "SELECT 1")
    assert res.exit_code == 2 and "flink [RIDECAST_FLINK]: Value error, exponential-delay needs 1 <= " in res.output


def test_valid_settings_reach_the_command(clean_env):
    res = _run("sql", "--help")
    assert res.exit_code == 0 and "invalid ridecast settings" not in res.output
