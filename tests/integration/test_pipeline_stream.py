"""The streaming lakehouse end to end, with real parts: Apache Kafka broker → PyFlink job (Flink's Kafka
connector, Iceberg's Flink sink) → Iceberg (SQLite and PostgreSQL catalogs) → SQL, and the job's two Kafka outputs
(online features, dead letters). Hostile and late messages go through the same run.

One streaming job per catalog backend (a PyFlink start costs ~30-60 s here): the job itself writes each
backend's catalog, so both are held to the same known answer.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from iceberg_catalog.catalog import open_catalog
from ridecast.config import Settings
from ridecast.events import Reason, load_zones, make_event, reject_reason
from ridecast.sources.producer import produce
from ridecast.sources.simulate import simulate_events
from ridecast.sql import run_sql
from ridecast.stack.broker import ensure_topics
from ridecast.stack.pipeline import JOB_TABLES, feature_job_process, start_stream, stop_stream
from tests.listeners import beyond_loopback, listening
from tests.reference import KEY, as_frame, assert_features_equal, reference_features
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
    # Late events: valid, but behind the watermark (the closing heartbeats moved it past every window, far more
    # than watermark_delay_s after these times): dead letters with the late reason and silver, never a window.
    start_ms = int(start.timestamp() * 1000)
    assert s.flink.watermark_delay_s * 1000 < events[-1]["event_time_ms"] - start_ms
    late = [make_event(f"late-{i}", start_ms + 60_000 * (i + 1), "requested", zone.zone)
            for i, zone in enumerate(ZONES[:3])]
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for i, event in enumerate(late):
        producer.send(s.kafka.events_topic, key=event["pickup_zone"].encode(), value=json.dumps(event).encode(),
                      partition=i % 2)
    producer.flush()
    producer.close()

    def late_landed() -> bool:
        return _rows(s, "ops.dead_letters").num_rows >= len(hostile) + len(late)

    wait_for(late_landed, 600, "the late events to land in the dead letters", diagnose)
    time.sleep(2 * s.flink.checkpoint_interval_s)  # anything extra (a duplicate) would land now
    job = feature_job_process(s).info()
    yield {"settings": s, "events": events, "hostile": hostile, "late": late, "expected": expected, "stats": stats,
           "job_alive": job is not None, "sent_at": sent_at, "home": home,
           "beyond_loopback": beyond_loopback(listening(job["pid"])) if job else None}


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
    late_ids = sorted(e["event_id"] for e in stream_run["late"])
    assert sorted(ids) == sorted([e["event_id"] for e in stream_run["events"]] + late_ids)
    # only the late events are late: the far-future event did not move the watermark
    assert sorted(i for i, late in zip(ids, silver.column("is_late").to_pylist()) if late) == late_ids
    bronze = _rows(committed, "bronze.trip_events")
    expected_messages = (len(stream_run["events"]) + stream_run["stats"].heartbeats + len(stream_run["hostile"])
                         + len(stream_run["late"]))
    assert bronze.num_rows == expected_messages
    keys = list(zip(bronze.column("source").to_pylist(), bronze.column("source_offset").to_pylist()))
    assert len(set(keys)) == len(keys)


def _dead_letter_reasons(stream_run) -> Counter:
    """Reason -> count the job must dead-letter: the oracle's reason per hostile message, and the late events."""
    zones = {z.zone for z in load_zones()}
    want = Counter(reject_reason(raw or b"", zones, now_ms=stream_run["sent_at"]) for raw, _ in stream_run["hostile"])
    want[Reason.LATE] += len(stream_run["late"])
    return want


def test_hostile_and_late_input_lands_in_dead_letters_with_the_reference_reason(stream_run, committed):
    dlq = _rows(committed, "ops.dead_letters").to_pylist()
    assert Counter(r["reason"] for r in dlq) == _dead_letter_reasons(stream_run)
    late = sorted((r["event_id"], json.loads(r["payload"])) for r in dlq if r["reason"] == Reason.LATE)
    assert late == sorted((e["event_id"], e) for e in stream_run["late"])
    assert stream_run["job_alive"], "the job must keep running after hostile input"


def _read_topic(broker: str, topic: str) -> list:
    """Every message of a topic, read up to its end offsets (Apache Kafka reports them correctly)."""
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False,
                             value_deserializer=json.loads)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    assert parts, f"topic {topic} does not exist"
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    end = consumer.end_offsets(parts)
    out = []
    while any(consumer.position(tp) < end[tp] for tp in parts):
        for records in consumer.poll(timeout_ms=1000).values():
            out += [r.value for r in records]
    consumer.close()
    return out


def test_dead_letter_topic_carries_every_dead_letter_once(stream_run, broker):
    s = stream_run["settings"]
    messages = _read_topic(broker, s.kafka.dead_letter_topic)
    assert Counter(m["reason"] for m in messages) == _dead_letter_reasons(stream_run)
    assert all(m["source"].startswith(f"kafka:{s.kafka.events_topic}/") and m["received_at"] for m in messages)
    late = sorted(json.loads(m["payload"])["event_id"] for m in messages if m["reason"] == Reason.LATE)
    assert late == sorted(e["event_id"] for e in stream_run["late"])


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
    assert dl.table.column("n").to_pylist() == [len(stream_run["hostile"]) + len(stream_run["late"])]


def test_online_topic_carries_every_window_with_every_feature(stream_run, broker):
    s = stream_run["settings"]
    messages = _read_topic(broker, s.kafka.features_topic)
    online = pd.DataFrame(messages)
    # the topic is at-least-once: a window may come twice after a restart, but only ever with the same values
    repeated = online.drop(columns="computed_at").drop_duplicates()
    assert not repeated.duplicated(KEY).any(), "a window was emitted with two different values"
    online = online.drop_duplicates(KEY)
    online["window_end"] = pd.to_datetime(online["window_end"], utc=True)
    start = pd.to_datetime(online["window_start"], utc=True)
    assert (online["window_end"] - start == pd.to_timedelta(online["window_minutes"], unit="min")).all()
    assert online["computed_at"].notna().all()
    online = online.sort_values(KEY).reset_index(drop=True)
    assert_features_equal(online, stream_run["expected"])  # every feature column, counts exactly


def test_the_job_listens_on_loopback_but_for_pyflinks_python_worker(stream_run):
    """Flink's blob server of the local run binds ``jobmanager.bind-host`` (127.0.0.1 from the job's
    configuration); what remains beyond the loopback is PyFlink's loopback Python worker in the driver, whose gRPC
    servers PyFlink binds on ``[::]:0`` (README, Limitations)."""
    beyond = stream_run["beyond_loopback"]
    assert beyond is not None, "the job was not running"
    assert set(beyond) <= {"python"}, beyond  # nothing of the JVM
    assert all(address == "::" for address, _port in beyond.get("python", [])), beyond
