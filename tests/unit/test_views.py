"""The library's result objects and their renderings (ridecast.views), and the one delivery path, in process."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from rich.console import Console

from ridecast.sources.deliver import Delivery, Target, deliver
from ridecast.sources.producer import ProduceStats
from ridecast.sources.simulate import SimulationResult, default_start, run_simulation
from ridecast.stack.lifecycle import DownResult, ProcessState, StackStatus, TableState, UpResult
from ridecast.stack.maintain import MaintainOptions, MaintainReport, TableMaintenance, UnknownTableError, resolve_tables
from ridecast.views import down_text, maintain_table, simulation_table, status_view, up_text


def _text(renderable: object) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_up_without_the_job_shows_no_pids(tmp_path: Path):
    r = UpResult("127.0.0.1:9092", ("trip-events", "zone-features"), "sqlite:///c.db", tmp_path)
    text = _text(up_text(r))
    assert "Kafka at 127.0.0.1:9092; topics trip-events, zone-features" in text and "pid" not in text
    started = UpResult(**{**r.__dict__, "feature_job_pid": 11})
    text = _text(up_text(started))
    assert "feature job pid 11, restored from no checkpoint (fresh start)" in text


def test_down_says_when_nothing_ran():
    assert down_text(DownResult(())) == "stopped: nothing was running"
    assert down_text(DownResult(("feature-job", "broker"))) == "stopped: feature-job, broker"


def test_status_marks_stopped_processes_health_and_last_commits(tmp_path: Path):
    r = StackStatus(
        (ProcessState("broker", 42, tmp_path / "broker.log", "ok, 3 topics"),
         ProcessState("feature-job", None, tmp_path / "f.log")),
        None,
        (TableState("silver.trip_events", 1200, 3, 1_767_600_000_000), TableState("gold.forecasts", 0, 0, None)),
    )
    assert r.processes[0].running and not r.processes[1].running
    lines = _text(status_view(r)).splitlines()
    assert any("broker" in line and "running" in line and "42" in line and "ok, 3 topics" in line for line in lines)
    assert any("feature-job" in line and "stopped" in line for line in lines)
    assert "newest checkpoint: none" in lines
    silver = next(line for line in lines if "silver.trip_events" in line)
    assert [cell.strip() for cell in silver.split("│")[2:5]] == ["1200", "3", "2026-01-05T08:00:00+00:00"]
    forecasts = next(line for line in lines if "gold.forecasts" in line)
    assert forecasts.split("│")[4].strip() == "-"  # never committed


def test_maintain_report_columns_follow_the_options():
    row = TableMaintenance("gold.zone_features", 10, 2, 1, 5000, 9, 1, orphans=4, orphan_bytes=3 * 2**20,
                           orphans_too_young=1)
    dry = MaintainOptions(orphans_dry_run=True)
    text = _text(maintain_table(MaintainReport(dry, (row,), ())))
    assert "orphans (dry run)" in text and "5,000" in text and "3.0" in text
    no_orphans = MaintainOptions(orphans=False)
    assert "orphan" not in _text(maintain_table(MaintainReport(no_orphans, (row,), ())))


def test_only_a_real_deletion_with_a_short_orphan_age_is_risky():
    short = dt.timedelta(hours=1)
    assert MaintainOptions(orphan_age=short).risky_orphan_age
    assert not MaintainOptions(orphan_age=short, orphans_dry_run=True).risky_orphan_age
    assert not MaintainOptions(orphan_age=short, orphans=False).risky_orphan_age
    assert not MaintainOptions().risky_orphan_age


def test_unknown_tables_are_a_typed_error():
    assert "silver.trip_events" in resolve_tables(None)
    assert resolve_tables(["gold.zone_features"]) == ["gold.zone_features"]
    with pytest.raises(UnknownTableError, match="gold.nope"):
        resolve_tables(["gold.zone_features", "gold.nope"])


def test_file_delivery_writes_json_lines_and_needs_a_path(settings, tmp_path: Path):
    events = [{"event_id": f"e{i}", "event_time_ms": i} for i in range(3)]
    d = deliver(iter(events), "file", settings, path=tmp_path / "out" / "e.jsonl")
    assert (d.target, d.written, d.produced, d.backfill) == (Target.file, 3, None, None)
    assert [json.loads(line) for line in d.path.read_text().splitlines()] == events
    with pytest.raises(ValueError, match="needs a path"):
        deliver(iter(events), Target.backfill, settings)
    with pytest.raises(ValueError):
        deliver(iter(events), "carrier-pigeon", settings, path=tmp_path / "x.jsonl")


def test_a_simulation_to_a_file_counts_what_it_delivered(settings, tmp_path: Path):
    start = dt.datetime(2025, 3, 4, 8, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    r = run_simulation(start, dt.timedelta(minutes=15), seed=3, target=Target.file, path=tmp_path / "s.jsonl",
                       settings=settings, progress=False)
    assert r.delivery.written == sum(r.event_types.values()) == len(r.delivery.path.read_text().splitlines())
    assert r.event_types["requested"] > 0
    text = _text(simulation_table(r, "trip-events"))
    assert "topic" not in text and str(r.delivery.path) in text and "requested" in text
    with pytest.raises(ValueError, match="positive"):
        run_simulation(start, dt.timedelta(0), target=Target.file, path=tmp_path / "z.jsonl", settings=settings)


def test_a_simulation_to_kafka_renders_what_was_sent(tmp_path: Path):
    stats = ProduceStats(sent=1000, heartbeats=24, seconds=2.0, rate=500.0, partitions=12, first_event_ms=0,
                         last_event_ms=1)
    r = SimulationResult(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc), dt.timedelta(hours=1), 0,
                         {"requested": 1000}, Delivery(Target.kafka, produced=stats), 2.0)
    text = _text(simulation_table(r, "trip-events"))
    assert "trip-events" in text and "500 events/s" in text and "written" not in text


def test_the_default_start_ends_the_run_two_hours_before_now():
    now = dt.datetime(2025, 6, 1, 12, 34, tzinfo=dt.timezone.utc)
    start = default_start(dt.timedelta(days=1), now=now)
    assert start.minute == start.second == 0
    assert start + dt.timedelta(days=1) <= now - dt.timedelta(hours=2) < start + dt.timedelta(days=1, hours=1)
