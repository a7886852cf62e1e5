"""``ridecast up --no-job | status | down`` against a real embedded broker and catalog: the CLI renders what the
library functions (ridecast.stack.lifecycle) return; status runs the broker's health check and reads each table's
last commit from the catalog.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from iceberg_catalog.catalog import open_catalog
from ridecast.commands import stack as stack_cmd
from ridecast.stack import lifecycle
from ridecast.stack.broker import broker_process

pytestmark = pytest.mark.integration


def test_up_status_down(settings):
    app = typer.Typer()
    stack_cmd.register(app)
    runner = CliRunner()
    env = {"COLUMNS": "250"}
    try:
        out = runner.invoke(app, ["up", "--no-job"], env=env)
        assert out.exit_code == 0, out.output
        assert "Kafka at 127.0.0.1:" in out.stdout and "feature job" not in out.stdout

        dead = open_catalog(settings).load_table("ops.dead_letters")
        row = {f.name: None for f in dead.schema().fields}
        row.update(reason="invalid_json", payload="{", payload_bytes=1, received_at=datetime.now(timezone.utc))
        dead.append(pa.Table.from_pylist([row], schema=dead.schema().as_arrow()))
        st = lifecycle.status(settings)
        procs = {p.name: p for p in st.processes}
        assert procs["broker"].running and not procs["feature-job"].running and not procs["trino"].running
        assert procs["broker"].health.startswith("ok, ") and procs["feature-job"].health is None
        tables = {t.identifier: t for t in st.tables}
        assert tables["ops.dead_letters"].rows == 1
        assert tables["ops.dead_letters"].last_commit_ms == dead.refresh().current_snapshot().timestamp_ms
        assert tables["gold.forecasts"].last_commit_ms is None

        broker_process(settings).kill()  # the health check tells a dead broker from a live one
        assert not {p.name: p for p in lifecycle.status(settings).processes}["broker"].running

        out = runner.invoke(app, ["up", "--no-job"], env=env)  # back, same log dirs
        assert out.exit_code == 0, out.output
        out = runner.invoke(app, ["status"], env=env)
        assert out.exit_code == 0, out.output
        broker_line = next(line for line in out.stdout.splitlines() if line.startswith("│ broker"))
        assert "running" in broker_line and "ok, " in broker_line

        out = runner.invoke(app, ["down"], env=env)
        assert out.exit_code == 0, out.output
        assert "stopped: broker" in out.stdout
        assert not {p.name: p for p in lifecycle.status(settings).processes}["broker"].running
        assert lifecycle.down(settings).stopped == ()
    finally:
        lifecycle.down(settings)
