"""``ridecast up --no-job | status | down`` against a real embedded broker and catalog: the CLI renders what the
library functions (ridecast.stack.lifecycle) return, and status counts staged files through the committer's layout.
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from iceberg_catalog.committer import Committer, stream_root
from ridecast.commands import stack as stack_cmd
from ridecast.stack import lifecycle

pytestmark = pytest.mark.integration


def _staged(settings, name: str) -> None:
    folder = stream_root(settings) / "silver"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"event_id": name, "event_time": "2026-01-05T08:00:00Z",
                                           "event_type": "requested", "pickup_zone": "BEDOK"}) + "\n")


def test_up_status_down(settings):
    app = typer.Typer()
    stack_cmd.register(app)
    runner = CliRunner()
    env = {"COLUMNS": "250"}
    try:
        out = runner.invoke(app, ["up", "--no-job"], env=env)
        assert out.exit_code == 0, out.output
        assert "Kafka at 127.0.0.1:" in out.stdout and "feature job" not in out.stdout

        _staged(settings, "part-a-0-0")
        Committer(settings, stream_root(settings)).commit_pending()
        _staged(settings, "part-a-0-1")  # finalized, not yet committed
        st = lifecycle.status(settings)
        procs = {p.name: p for p in st.processes}
        assert procs["broker"].running and not procs["feature-job"].running and not procs["committer"].running
        tables = {t.identifier: t for t in st.tables}
        assert (tables["silver.trip_events"].rows, tables["silver.trip_events"].pending) == (1, 1)
        assert tables["gold.forecasts"].pending is None  # nothing stages it

        out = runner.invoke(app, ["status"], env=env)
        assert out.exit_code == 0, out.output
        broker_line = next(line for line in out.stdout.splitlines() if line.startswith("│ broker"))
        assert "running" in broker_line and str(procs["broker"].pid) in broker_line

        out = runner.invoke(app, ["down"], env=env)
        assert out.exit_code == 0, out.output
        assert "stopped: broker" in out.stdout
        assert not {p.name: p for p in lifecycle.status(settings).processes}["broker"].running
        assert lifecycle.down(settings).stopped == ()
    finally:
        lifecycle.down(settings)
