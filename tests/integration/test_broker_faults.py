"""The broker fails under a running pipeline: nothing acknowledged is lost, nothing lands twice.

Each test runs its own Apache Kafka broker (the embedded one ``ridecast up`` starts, log dirs in the test's state
dir), because it kills it. Parametrised over both catalog backends, as the reliability promise is per backend.

* ``kill -9`` of the broker, then of the Flink job, mid-stream, both restarted: every message the producer had
  acknowledged with ``acks=all`` is still in the topic, read back from offset 0, and the lake ends with every
  event and every window exactly once.
* A broker outage of 30 s with hostile input and late events around it: the job recovers by itself (same
  process, nobody restarts it), dead letters carry their reasons, and the lake is complete once the broker
  is back.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from iceberg_catalog.catalog import open_catalog
from ridecast.config import Settings
from ridecast.events import Reason, load_zones, make_event
from ridecast.sources.producer import produce
from ridecast.sources.simulate import simulate_events
from ridecast.stack.broker import broker_process, ensure_topics, start_broker, stop_broker
from ridecast.stack.pipeline import feature_job_process, start_stream, stop_stream
from tests.reference import as_frame, assert_features_equal, reference_features
from tests.streaming import env_settings, hostile_messages, wait_for

ZONES = [z for z in load_zones() if z.zone in {"DOWNTOWN_CORE", "BEDOK", "TAMPINES"}]
OUTAGE_S = 30


@pytest.fixture(params=["sqlite", "postgres"])
def own_broker_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings with an embedded broker of the test's own (no bootstrap servers configured), on each catalog."""
    env = {
        "RIDECAST_HOME": str(tmp_path / "home"),
        "RIDECAST_FLINK__CHECKPOINT_INTERVAL_S": "3",
        "RIDECAST_FLINK__CONSUMER_GROUP": f"g-{uuid.uuid4().hex[:8]}",
    }
    if request.param == "postgres":
        env["RIDECAST_CATALOG__URI"] = request.getfixturevalue("postgres_uri")
        env["RIDECAST_CATALOG__NAME"] = f"t{uuid.uuid4().hex[:10]}"
    with env_settings(env) as s:
        start_broker(s)
        try:
            yield s
        finally:
            stop_stream(s)
            stop_broker(s)


def _events(start: datetime, hours: float, seed: int) -> list[dict]:
    return list(simulate_events(start, timedelta(hours=hours), seed=seed, zones=ZONES))


def _table(s: Settings, ident: str):
    return open_catalog(s).load_table(ident).scan().to_arrow()


def _topic_records(s: Settings, topic: str) -> list[bytes]:
    """Every record of a topic from offset 0, by assignment (no group), until the end offsets are reached."""
    consumer = KafkaConsumer(bootstrap_servers=start_broker(s), enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        values = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=2000).values():
                values.extend(r.value for r in batch)
        return values
    finally:
        consumer.close()


def _assert_lake_exact(s: Settings, events: list[dict], late: list[dict] = ()) -> None:
    """Silver holds every valid event once (late ones too, flagged); gold equals the reference windows."""
    silver = _table(s, "silver.trip_events").column("event_id").to_pylist()
    assert len(silver) == len(set(silver)), "duplicated events in silver"
    assert sorted(silver) == sorted(e["event_id"] for e in [*events, *late]), "lost events in silver"
    expected = reference_features(events, s.flink.window_minutes, s.flink.slide_minutes)
    assert_features_equal(as_frame(_table(s, "gold.zone_features")), expected)


def _log(s: Settings) -> str:
    job = (s.log_dir / "feature-job.log").read_text(errors="replace")[-3000:]
    broker = (s.log_dir / "broker.log").read_text(errors="replace")[-1500:]
    return f"job log: {job}\nbroker log: {broker}"


def test_kill_9_broker_then_job_mid_stream_loses_no_acknowledged_message(own_broker_env: Settings):
    s = own_broker_env
    ensure_topics(s)
    start = (datetime.now(timezone.utc) - timedelta(hours=8)).replace(minute=0, second=0, microsecond=0)
    events = _events(start, 3, seed=17)
    third = len(events) // 3
    parts = [events[:third], events[third:2 * third], events[2 * third:]]

    start_stream(s)
    sent = [produce(parts[0], s, close_after=timedelta(0), progress=False)]
    wait_for(lambda: _table(s, "silver.trip_events").num_rows > 0, 600, "a first commit", lambda: _log(s))

    broker = broker_process(s)
    assert broker.info() is not None, "the broker must be alive before it is killed"
    broker.kill()  # kill -9, mid-stream: the job's consumer and producers lose their broker
    assert broker.info() is None
    start_broker(s)  # same log dirs, same port
    sent.append(produce(parts[1], s, close_after=timedelta(0), progress=False))

    job = feature_job_process(s)
    assert job.info() is not None, "the job must have survived the broker restart"
    job.kill()
    assert job.info() is None
    rec = start_stream(s)
    assert rec["restored_from"], "the job must restore from its checkpoint"
    sent.append(produce(parts[2], s, progress=False))

    wait_for(lambda: _table(s, "silver.trip_events").num_rows >= len(events)
             and _table(s, "gold.zone_features").num_rows
             >= len(reference_features(events, s.flink.window_minutes, s.flink.slide_minutes)),
             600, "every event and window to land", lambda: _log(s))
    time.sleep(3 * s.flink.checkpoint_interval_s)  # a duplicate would land now
    stop_stream(s)

    # every acknowledged message is still in Kafka, exactly once
    acked = sum(st.sent + st.heartbeats for st in sent)
    in_topic = [json.loads(v) for v in _topic_records(s, s.kafka.events_topic)]
    assert len(in_topic) == acked
    ids = [m["event_id"] for m in in_topic if m["event_type"] != "heartbeat"]
    assert sorted(ids) == sorted(e["event_id"] for e in events)
    _assert_lake_exact(s, events)


def test_broker_outage_with_hostile_and_late_input_job_recovers_by_itself(own_broker_env: Settings):
    s = own_broker_env
    ensure_topics(s)
    start = (datetime.now(timezone.utc) - timedelta(hours=8)).replace(minute=0, second=0, microsecond=0)
    events = _events(start, 2, seed=23)
    half = len(events) // 2
    t0 = int(start.timestamp() * 1000)
    hostile = hostile_messages("BEDOK", t0)

    start_stream(s)
    producer = KafkaProducer(bootstrap_servers=start_broker(s), acks="all")
    for raw, _ in hostile:
        producer.send(s.kafka.events_topic, key=b"hostile", value=raw)
    producer.flush()
    producer.close()
    produce(events[:half], s, close_after=timedelta(0), progress=False)
    wait_for(lambda: _table(s, "silver.trip_events").num_rows > 0, 600, "a first commit", lambda: _log(s))

    job = feature_job_process(s)
    job_pid = job.info()["pid"]
    broker_process(s).kill()
    time.sleep(OUTAGE_S)  # the outage itself: nothing is asserted on timing
    assert job.info() is not None, "the job must ride out a broker outage"
    start_broker(s)

    # late events: far behind the watermark that the first half already pushed past them
    late = [make_event(f"late-{i}", t0 + i * 1000, "requested", "TAMPINES") for i in range(5)]
    produce(events[half:], s, progress=False)
    producer = KafkaProducer(bootstrap_servers=start_broker(s), acks="all")
    for ev in late:
        producer.send(s.kafka.events_topic, value=json.dumps(ev).encode())
    producer.flush()
    producer.close()

    wait_for(lambda: _table(s, "silver.trip_events").num_rows >= len(events) + len(late), 600, "the second half",
             lambda: _log(s))
    wait_for(lambda: _table(s, "ops.dead_letters").num_rows >= len(hostile) + len(late), 600,
             "the dead letters", lambda: _log(s))
    time.sleep(3 * s.flink.checkpoint_interval_s)
    assert job.info() is not None and job.info()["pid"] == job_pid, "the job must recover by itself"
    stop_stream(s)

    _assert_lake_exact(s, events, late)
    dead = _table(s, "ops.dead_letters").to_pylist()
    reasons = [d["reason"] for d in dead]
    assert reasons.count(Reason.LATE) == len(late), reasons
    assert all(r for r in reasons), "every dead letter carries its reason"
    assert len(dead) == len(hostile) + len(late), "each bad message is dead-lettered once"
