"""The embedded Trino as a managed process: found by `--engine trino` when no URL is configured, shown by
`ridecast status`, typed errors when it cannot start."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from iceberg_catalog.catalog import ensure_tables, open_catalog
from ridecast.config import Settings, TrinoSettings
from ridecast.sql import SqlError, run_sql
from ridecast.stack.trino import TrinoNotInstalledError, TrinoNotReadyError, start_trino, trino_process

pytestmark = pytest.mark.integration


def test_engine_trino_uses_the_running_embedded_server(trino_stack: Settings):
    s = Settings(home=trino_stack.home)  # no sql.trino_url: the server `up --trino` started is used
    assert s.sql.trino_url is None
    ensure_tables(open_catalog(s))  # the static `iceberg` catalog is this state dir's SQLite catalog
    res = run_sql("SELECT count(*) AS n FROM gold.zone_features", s, engine="trino")
    assert res.engine == "trino" and res.to_pylist() == [{"n": 0}]
    assert run_sql("SELECT 1 AS one", s).engine == "embedded"  # auto without a URL stays embedded


def test_engine_trino_without_a_server_says_how_to_get_one(tmp_path):
    with pytest.raises(SqlError, match="ridecast up --trino"):
        run_sql("SELECT 1", Settings(home=tmp_path), engine="trino")


def test_status_shows_trino_running(trino_stack: Settings, monkeypatch):
    from ridecast.cli import app
    from ridecast.config import get_settings

    monkeypatch.setenv("RIDECAST_HOME", str(trino_stack.home))
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["status"], env={"COLUMNS": "250"})
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.stdout.splitlines() if ln.lstrip("│ ").startswith("trino "))
    assert "running" in line and str(trino_process(trino_stack).info()["pid"]) in line


def test_bad_java_home_is_not_installed(tmp_path):
    with pytest.raises(TrinoNotInstalledError, match="Java 24"):
        start_trino(Settings(home=tmp_path, trino=TrinoSettings(java_home=str(tmp_path))))
    assert trino_process(Settings(home=tmp_path)).info() is None


def test_a_jvm_that_dies_at_start_is_not_ready_with_the_log_path(tmp_path):
    s = Settings(home=tmp_path, trino=TrinoSettings(heap="nonsense"))  # -Xmxnonsense: the JVM exits at once
    with pytest.raises(TrinoNotReadyError, match=r"exited during start-up; see .*trino\.log"):
        start_trino(s, timeout=120)
    assert trino_process(s).info() is None
