"""Exactly once per input file through Iceberg's Flink sink, on every catalog backend (the batch path).

The streaming path's crash is ``test_recovery.py`` (kill -9 mid-stream). Here a backfill's commits must be
recognised from the tables themselves: the file's digest is the Flink job id, and Iceberg's committer (Sink V2)
skips a table whose snapshots already hold that job's commit. The fault injected is the one a kill after the
catalog commits but before the run's own bookkeeping leaves behind: the job runs again over the same file.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from iceberg_catalog.catalog import open_catalog
from ridecast.events import load_zones
from ridecast.sources.simulate import simulate_events
from ridecast.stack import pipeline
from ridecast.stack.pipeline import JOB_TABLES, backfill, backfill_snapshots
from tests.reference import as_frame, assert_features_equal, reference_features

pytestmark = pytest.mark.integration

ZONES = [z for z in load_zones() if z.zone in {"BEDOK", "CHANGI"}]
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: the batch job's clock


def _table(settings, ident: str):
    return open_catalog(settings).load_table(ident)


def test_a_rerun_of_the_same_file_appends_nothing(catalog_settings, tmp_path, monkeypatch):
    start = datetime(2025, 12, 30, 8, tzinfo=timezone.utc)
    events = list(simulate_events(start, timedelta(hours=1), seed=3, zones=ZONES, scale=1.0))
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + "{not json\n", encoding="utf-8")
    valid = [e for e in events if e["event_type"] in ("requested", "completed", "cancelled")]
    expected = reference_features(events, catalog_settings.flink.window_minutes, catalog_settings.flink.slide_minutes)

    first = backfill(path, catalog_settings, now_ms=NOW_MS, progress=False)
    assert not first.skipped and first.committed["silver.trip_events"] == len(valid)
    job_id = (catalog_settings.state_dir / "backfills" / f"{first.backfill_id}.done").read_text().strip()
    snaps = backfill_snapshots(catalog_settings, job_id)
    assert all(len(snaps[ident]) == 1 for ident in JOB_TABLES), snaps  # one commit per table, all of this job

    # the same file again: recognised (the run's marker), and without it from the tables themselves
    assert backfill(path, catalog_settings, now_ms=NOW_MS, progress=False).skipped
    (catalog_settings.state_dir / "backfills" / f"{first.backfill_id}.done").unlink()
    assert backfill(path, catalog_settings, now_ms=NOW_MS, progress=False).skipped

    # the job itself runs again over the same file (the check before it found nothing): Iceberg's committer
    # must find this job's commits in every table and add nothing
    with monkeypatch.context() as mp:
        mp.setattr(pipeline, "backfill_snapshots", lambda s, j: {ident: [] for ident in JOB_TABLES})
        again = backfill(path, catalog_settings, now_ms=NOW_MS, progress=False)
    assert not again.skipped
    assert {ident: len(v) for ident, v in backfill_snapshots(catalog_settings, job_id).items()} == \
        {ident: 1 for ident in JOB_TABLES}

    silver = _table(catalog_settings, "silver.trip_events").scan().to_arrow().column("event_id").to_pylist()
    assert sorted(silver) == sorted(e["event_id"] for e in valid)
    assert_features_equal(as_frame(_table(catalog_settings, "gold.zone_features").scan().to_arrow()), expected)
    assert _table(catalog_settings, "bronze.trip_events").scan().to_arrow().num_rows == len(events) + 1
    assert _table(catalog_settings, "ops.dead_letters").scan().to_arrow().num_rows == 1
