"""``ridecast maintain`` refuses retention ages that would forget what was committed (iceberg_catalog.maintenance
.Retention): snapshots must outlive the committed staging files they identify."""

from __future__ import annotations

import datetime as dt

import pytest
import typer
from typer.testing import CliRunner

from iceberg_catalog.maintenance import Retention, RetentionError
from ridecast.commands import maintain as maintain_cmd

H = dt.timedelta(hours=1)


def test_snapshots_kept_at_least_as_long_as_staged_files_are_accepted():
    assert Retention(snapshot_age=120 * H, staging_age=H).snapshot_age == 120 * H
    assert Retention(snapshot_age=H, staging_age=H).staging_age == H  # equal is fine


@pytest.mark.parametrize("snapshot_h, staging_h", [(0.5, 1.0), (0.0, 0.1), (1.0, -1.0)])
def test_snapshots_expiring_before_staging_cleanup_are_refused(snapshot_h, staging_h):
    with pytest.raises(RetentionError, match="--older-than-hours|negative"):
        Retention(snapshot_age=snapshot_h * H, staging_age=staging_h * H)


def test_cli_refuses_before_touching_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("RIDECAST_HOME", str(tmp_path / "home"))
    app = typer.Typer()
    maintain_cmd.register(app)
    app.command("noop")(lambda: None)  # a group of two, so the command is invoked by name
    result = CliRunner().invoke(app, ["maintain", "--older-than-hours", "0.5", "--staging-age-hours", "2"])
    assert result.exit_code == 2
    assert "--older-than-hours >= --staging-age-hours (here >= 2)" in result.output
    assert not (tmp_path / "home").exists()  # no catalog opened, nothing deleted
