"""The streaming lakehouse end to end, with real parts: Kafka broker → PyFlink job (Flink's Kafka connector,
Iceberg's Flink sink) → Iceberg (SQLite and PostgreSQL catalogs) → SQL.

One streaming job per catalog backend (a PyFlink start costs ~30-60 s here): the job itself writes each
backend's catalog, so both are held to the same known answer.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaConsumer, KafkaProducer

from iceberg_catalog.catalog import open_catalog
from ridecast.config import Settings
from ridecast.events import load_zones, reject_reason
from ridecast.pipeline import JOB_TABLES, feature_job_process, start_stream, stop_stream
from ridecast.producer import produce
from ridecast.simulate import simulate_events
from ridecast.sql import run_sql
from ridecast.stack.broker import ensure_topics
from tests.reference import as_frame, assert_features_equal, reference_features
from tests.streaming import hostile_messages, stream_env, wait_for

pytestmark = pytest.mark.integration

ZONES = [z for z in load_zones() if z.zone in {"DOWNTOWN_CORE", "CHANGI", "TAMPINES", "ORCHARD", "WOODLANDS"}]


def _events(start: datetime, hours: float, seed: int) -> list[dict]:
    return list(simulate_events(start, timedelta(hours=hours), seed=seed, zones=ZONES, scale=1.0))


def _rows(settings: Settings, ident: str):
    return open_catalog(settings).load_table(ident).scan().to_arrow()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stream_run(request, broker, tmp_path_factory):
    """Run the streaming job once per catalog backend over simulated events plus hostile messages."""
    home = tmp_path_factory.mktemp("stream")
    catalog = {}
    if request.param == "postgres":
        catalog = {"RIDECAST_CATALOG__URI": request.getfixturevalue("postgres_uri"),
                   "RIDECAST_CATALOG__NAME": "stream_e2e"}
    with stream_env(home, broker, RIDECAST_KAFKA__PARTITIONS="2", **catalog) as s:
        ensure_topics(s)
        start_stream(s)
        try:
            yield from _run(s, broker, home)
        finally:
            stop_stream(s)


def _run(s: Settings, broker: str, home):
    start = (datetime.now(timezone.utc) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    events = _events(start, 2, seed=11)
    hostile = hostile_messages("TAMPINES", int(start.timestamp() * 1000))
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for raw, _ in hostile:  # first, so the far-future timestamp comes before every valid event
        producer.send(s.kafka.events_topic, key=b"hostile", value=raw, partition=0)
    producer.flush()
    producer.close()
    sent_at = int(time.time() * 1000)
    stats = produce(events, s, progress=False)
    expected = reference_features(events, s.flink.window_minutes, s.flink.slide_minutes)

    def landed() -> bool:
        return (_rows(s, "gold.zone_features").num_rows >= len(expected)
                and _rows(s, "silver.trip_events").num_rows >= len(events))

    def diagnose() -> str:
        return f"job log: {(s.log_dir / 'feature-job.log').read_text()[-3000:]}"

    wait_for(landed, 600, "the stream's windows to land in Iceberg", diagnose)
    time.sleep(2 * s.flink.checkpoint_interval_s)  # anything extra (a duplicate) would land now
    job_alive = feature_job_process(s).info() is not None
    yield {"settings": s, "events": events, "hostile": hostile, "expected": expected, "stats": stats,
           "job_alive": job_alive, "sent_at": sent_at, "home": home}


@pytest.fixture
def committed(stream_run) -> Settings:
    """The settings whose catalog the run's job wrote."""
    return stream_run["settings"]


def test_the_job_commits_through_icebergs_flink_sink(stream_run, committed):
    """No other writer: every snapshot of the job's tables is a Flink commit of one job, at a checkpoint."""
    catalog = open_catalog(committed)
    for ident in JOB_TABLES:
        snaps = catalog.load_table(ident).metadata.snapshots
        assert snaps, ident
        props = [snap.summary.additional_properties for snap in snaps]
        assert all(p.get("engine-name") == "flink" and p.get("flink.job-id") for p in props), ident
        checkpoints = [int(p["flink.max-committed-checkpoint-id"]) for p in props]
        assert checkpoints == sorted(set(checkpoints)), f"{ident}: a checkpoint committed twice"


def test_windows_match_the_reference_exactly(stream_run, committed):
    actual = as_frame(_rows(committed, "gold.zone_features"))
    assert_features_equal(actual, stream_run["expected"])


def test_silver_has_every_valid_event_once_and_bronze_every_message(stream_run, committed):
    silver = _rows(committed, "silver.trip_events")
    ids = silver.column("event_id").to_pylist()
    assert sorted(ids) == sorted(e["event_id"] for e in stream_run["events"])
    assert sum(silver.column("is_late").to_pylist()) == 0  # the far-future event did not move the watermark
    bronze = _rows(committed, "bronze.trip_events")
    expected_messages = len(stream_run["events"]) + stream_run["stats"].heartbeats + len(stream_run["hostile"])
    assert bronze.num_rows == expected_messages
    keys = list(zip(bronze.column("source").to_pylist(), bronze.column("source_offset").to_pylist()))
    assert len(set(keys)) == len(keys)


def test_hostile_input_lands_in_dead_letters_with_the_reference_reason(stream_run, committed):
    dlq = _rows(committed, "ops.dead_letters").to_pylist()
    zones = {z.zone for z in load_zones()}
    assert len(dlq) == len(stream_run["hostile"])
    got = sorted(r["reason"] for r in dlq)
    want = sorted(reject_reason(raw or b"", zones, now_ms=stream_run["sent_at"]) for raw, _ in stream_run["hostile"])
    assert got == want
    assert all(r["reason"] for r in dlq)
    assert stream_run["job_alive"], "the job must keep running after hostile input"


def test_sql_over_the_committed_tables(stream_run, committed):
    """Trino-dialect SQL on the embedded engine reads what the pipeline wrote, on each catalog backend."""
    res = run_sql(
        "SELECT zone, sum(requests) AS requests FROM iceberg.gold.zone_features "
        "WHERE window_minutes = 15 AND minute(window_end) % 15 = 0 GROUP BY zone ORDER BY requests DESC",
        committed,
    )
    expected = stream_run["expected"]
    tumbling = expected[(expected.window_minutes == 15) & (expected.window_end.dt.minute % 15 == 0)]
    want = tumbling.groupby("zone")["requests"].sum().sort_values(ascending=False)
    assert dict(zip(res.table.column("zone").to_pylist(), res.table.column("requests").to_pylist())) == want.to_dict()
    dl = run_sql("SELECT count(*) AS n FROM ops.dead_letters", committed)
    assert dl.table.column("n").to_pylist() == [len(stream_run["hostile"])]


def test_online_topic_carries_every_window(stream_run, broker):
    s = stream_run["settings"]
    consumer = KafkaConsumer(s.kafka.features_topic, bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, value_deserializer=json.loads, group_id=None)
    latest = {}
    for msg in consumer:  # stops on idle, never on end_offsets (Tansu quirk)
        v = msg.value
        latest[(v["zone"], v["window_minutes"], v["window_end"])] = v["requests"]
    consumer.close()
    expected = stream_run["expected"]
    want = {(r.zone, int(r.window_minutes), r.window_end.strftime("%Y-%m-%dT%H:%M:%SZ")): int(r.requests)
            for r in expected.itertuples()}
    assert latest == want
