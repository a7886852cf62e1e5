"""The embedded scheduler (``ridecast up --schedule``) running real ridecast CLI subprocesses.

The first test drives time: ``run_scheduler`` with an injected clock and sleep, so hours of cron times pass in
seconds while every run is a real ``python -m ridecast`` process. The second starts the real scheduler process
with an every-minute schedule, as ``ridecast up --schedule`` does, and sees it catch up once after "downtime",
skip a run whose job lock is held elsewhere, run and record the next minute's runs, show them in
``ridecast status``, and stop with ``ridecast down``.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from ridecast.cli import app
from ridecast.config import Settings, get_settings
from ridecast.stack import lifecycle
from ridecast.stack.process import free_port
from ridecast.stack.schedule import (
    DueRun,
    _load_handled,
    _save_handled,
    due_runs,
    latest_fire,
    read_runs,
    run_scheduler,
    runs_file,
    scheduler_process,
)

pytestmark = pytest.mark.integration

UTC = timezone.utc


def test_driven_clock_runs_each_due_job_once_one_at_a_time(tmp_path):
    s = Settings(home=tmp_path / "home", schedules={
        "retrain": "0 * * * *", "forecast": "*/15 * * * *", "maintain": None,
        "commands": {"retrain": ["--help"], "forecast": ["tables"]}})
    now = [datetime(2026, 12, 2, 9, 50, tzinfo=UTC)]
    stop = threading.Event()
    runs = []

    def wait(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    def on_run(record) -> None:
        runs.append(record)
        if len(runs) == 3:
            now[0] += timedelta(hours=5)  # the machine sleeps through 20 forecast and 5 retrain times
        if len(runs) == 5:
            stop.set()

    run_scheduler(s, stop=stop, clock=lambda: now[0], wait=wait, on_run=on_run)
    got = [(r.job, r.scheduled.strftime("%H:%M"), r.outcome) for r in runs]
    assert got == [("retrain", "10:00", "succeeded"), ("forecast", "10:00", "succeeded"),
                   ("forecast", "10:15", "succeeded"),
                   ("retrain", "15:00", "succeeded"), ("forecast", "15:15", "succeeded")]  # once each, not 25 runs
    assert [r.run_id for r in read_runs(s)] == [r.run_id for r in runs]  # every run recorded, in order
    assert "Usage: ridecast" in (s.log_dir / "schedule" / "retrain.log").read_text()


def test_stopping_the_scheduler_interrupts_the_run_and_it_runs_again_on_the_next_start(tmp_path, monkeypatch):
    # a job that blocks (a producer waiting for a broker that is not there) stands for a long run
    monkeypatch.setenv("RIDECAST_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    s = Settings(home=tmp_path / "home", schedules={
        "retrain": None, "maintain": None, "forecast": "*/15 * * * *",
        "commands": {"forecast": ["simulate", "--hours", "1", "--speedup", "1", "--no-progress"]}})
    _save_handled(s, {"forecast": datetime(2026, 12, 2, 9, 50, tzinfo=UTC)})
    now = datetime(2026, 12, 2, 10, 5, tzinfo=UTC)
    stop = threading.Event()
    runs = []
    loop = threading.Thread(target=run_scheduler, args=(s,),
                            kwargs=dict(stop=stop, clock=lambda: now, on_run=runs.append))
    loop.start()
    try:
        _wait_for(lambda: runs_file(s).exists() and '"started"' in runs_file(s).read_text(), 60, "the run to start")
    finally:
        stop.set()  # what SIGTERM from `ridecast down` does in the scheduler process
        loop.join(60)
    assert not loop.is_alive()
    (run,) = runs
    assert (run.outcome, run.scheduled) == ("interrupted", datetime(2026, 12, 2, 10, 0, tzinfo=UTC))
    assert read_runs(s)[-1].outcome == "interrupted"
    handled = _load_handled(s, now)  # not marked handled: the next start runs it again, once
    assert due_runs(s.schedules.jobs(), s.schedules.timezone, handled, now) == [DueRun("forecast", run.scheduled)]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def test_scheduler_process_catches_up_once_runs_records_and_stops_with_down(settings, monkeypatch):
    monkeypatch.setenv("RIDECAST_SCHEDULES__RETRAIN", "")
    monkeypatch.setenv("RIDECAST_SCHEDULES__FORECAST", "* * * * *")
    monkeypatch.setenv("RIDECAST_SCHEDULES__MAINTAIN", "* * * * *")
    monkeypatch.setenv("RIDECAST_SCHEDULES__COMMANDS", json.dumps(
        {"forecast": ["tables"], "maintain": ["maintain", "--table", "no.such_table"]}))
    get_settings.cache_clear()
    s = get_settings()
    # the scheduler last handled both jobs 10 minutes ago, then the machine was down
    start = datetime.now(UTC)
    state = s.state_dir / "schedule" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"handled": {"forecast": (start - timedelta(minutes=10)).isoformat(),
                                             "maintain": (start - timedelta(minutes=10)).isoformat()}}))
    lock_path = s.run_dir / "schedule-forecast.lock"
    lock_path.parent.mkdir(parents=True)
    runner = CliRunner()
    lock = lock_path.open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # someone else is running the forecast job right now
    try:
        r = lifecycle.up_schedule(s)
        assert r.pid == scheduler_process(s).info()["pid"] and [j.job for j in r.jobs] == ["forecast", "maintain"]
        first = _wait_for(lambda: [x for x in read_runs(s) if x.ended] if len(
            [x for x in read_runs(s) if x.ended]) >= 2 else None, 120, "the two catch-up runs")
        fcntl.flock(lock, fcntl.LOCK_UN)
        forecast, maintain = first[0], first[1]
        caught_up_to = latest_fire("* * * * *", "Etc/UTC", start)
        assert (forecast.job, forecast.outcome, forecast.scheduled) in {
            ("forecast", "skipped", caught_up_to), ("forecast", "skipped", caught_up_to + timedelta(minutes=1))}
        assert "holds its lock" in forecast.message
        assert (maintain.job, maintain.outcome, maintain.exit_code) == ("maintain", "failed", 2)
        assert "unknown table(s) no.such_table" in maintain.log_file.read_text()

        # the next minute's forecast runs for real and is recorded
        done = _wait_for(lambda: next((x for x in read_runs(s) if x.job == "forecast" and x.outcome == "succeeded"),
                                      None), 150, "a scheduled forecast run")
        assert done.scheduled > forecast.scheduled and done.exit_code == 0
        assert "last commit (UTC)" in done.log_file.read_text()  # `ridecast tables` output

        runs = read_runs(s)
        assert sum(1 for x in runs if x.scheduled <= caught_up_to) <= 2  # 10 missed minutes: one run per job
        finished = [x for x in runs if x.ended]
        assert all(a.ended <= b.started for a, b in zip(finished, finished[1:]))  # one run at a time

        out = runner.invoke(app, ["status"], env={"COLUMNS": "250"})
        assert out.exit_code == 0, out.output
        sched_line = next(line for line in out.stdout.splitlines() if line.startswith("│ scheduler"))
        assert "running" in sched_line and "next: forecast at " in sched_line
        assert "ridecast tables" in out.stdout and "* * * * *" in out.stdout
    finally:
        lock.close()
        out = runner.invoke(app, ["down"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "stopped: scheduler" in out.stdout
    assert scheduler_process(s).info() is None
    assert lifecycle.down(s).stopped == ()
