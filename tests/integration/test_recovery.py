"""kill -9 of the feature job and of the Iceberg committer, mid-stream, then restart: nothing lost, nothing twice.

Real processes, real signals: each component runs in its own process group (as `ridecast up` starts it) and is
killed with SIGKILL. The job restarts from its newest complete checkpoint; the committer from the snapshots.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from iceberg_catalog.catalog import open_catalog
from ridecast.events import load_zones
from ridecast.sources.producer import produce
from ridecast.sources.simulate import simulate_events
from ridecast.stack.broker import ensure_topics
from ridecast.stack.pipeline import (
    committer_process,
    feature_job_process,
    latest_checkpoint,
    start_committer,
    start_stream,
    stop_stream,
)
from tests.reference import as_frame, assert_features_equal, reference_features
from tests.streaming import stream_env, wait_for

pytestmark = pytest.mark.integration

ZONES = [z for z in load_zones() if z.zone in {"DOWNTOWN_CORE", "BEDOK", "JURONG_WEST", "YISHUN"}]


def _count(settings, ident: str) -> int:
    return open_catalog(settings).load_table(ident).scan().to_arrow().num_rows


def test_kill_9_job_and_committer_mid_stream_loses_and_duplicates_nothing(broker, tmp_path):
    with stream_env(tmp_path / "home", broker) as s:
        ensure_topics(s)
        start = (datetime.now(timezone.utc) - timedelta(hours=8)).replace(minute=0, second=0, microsecond=0)
        events = list(simulate_events(start, timedelta(hours=3), seed=5, zones=ZONES))
        half = len(events) // 2
        part_a, part_b = events[:half], events[half:]
        expected = reference_features(events, s.flink.window_minutes, s.flink.slide_minutes)
        job, committer = feature_job_process(s), committer_process(s)
        log = lambda: (s.log_dir / "feature-job.log").read_text()[-3000:]  # noqa: E731
        try:
            start_stream(s)
            start_committer(s)
            sent = produce(part_a, s, close_after=timedelta(0), progress=False)

            wait_for(lambda: _count(s, "silver.trip_events") > 0, 600, "a first commit", log)
            job.kill()  # kill -9 the driver and its JVM, mid-stream
            committer.kill()
            assert latest_checkpoint(s.checkpoint_dir) is not None
            sent_b = produce(part_b, s, progress=False)  # arrives while nothing consumes it

            rec = start_stream(s)
            assert rec["restored_from"], "the job must restore from its checkpoint"
            start_committer(s)
            wait_for(lambda: _count(s, "silver.trip_events") > half, 600, "part B to start landing", log)
            committer.kill()  # the committer, mid-stream
            job.kill()  # and the job once more, restored twice in a row
            start_committer(s)
            rec2 = start_stream(s)
            assert rec2["restored_from"] and rec2["restored_from"] != rec["restored_from"]

            wait_for(lambda: _count(s, "gold.zone_features") >= len(expected)
                     and _count(s, "silver.trip_events") >= len(events), 600, "everything to land", log)
            time.sleep(3 * s.flink.checkpoint_interval_s + 2 * s.commit_interval_s)  # duplicates would show now
        finally:
            stop_stream(s)

        catalog = open_catalog(s)
        silver = catalog.load_table("silver.trip_events").scan().to_arrow().column("event_id").to_pylist()
        assert len(silver) == len(set(silver)), "duplicated events in silver"
        assert sorted(silver) == sorted(e["event_id"] for e in events), "lost events in silver"
        assert_features_equal(as_frame(catalog.load_table("gold.zone_features").scan().to_arrow()), expected)
        bronze = catalog.load_table("bronze.trip_events").scan().to_arrow()
        offsets = bronze.column("source_offset").to_pylist()
        assert len(offsets) == len(set(offsets)) == len(events) + sent.heartbeats + sent_b.heartbeats
