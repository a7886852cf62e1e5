"""The stack's live traffic process against the real session broker: events as they happen, stopped by `down`,
its last event recorded for the next replay's resume point."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from ridecast.events import HEARTBEAT
from ridecast.stack import lifecycle
from ridecast.stack.broker import bootstrap_servers, ensure_topics
from ridecast.stack.traffic import last_sent, last_sent_file, start_traffic, traffic_process

pytestmark = pytest.mark.integration


def _read(settings, stop_when, timeout_s: float = 120.0) -> list[tuple[float, dict]]:
    """(receipt time, event) of every data event on the events topic until ``stop_when(pairs)`` or timeout."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.kafka.events_topic
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(settings), enable_auto_commit=False,
                             group_id=None, auto_offset_reset="earliest")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        got: list[tuple[float, dict]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not stop_when(got):
            for recs in consumer.poll(timeout_ms=500).values():
                now = time.time()
                got += [(now, v) for v in (json.loads(r.value) for r in recs) if v["event_type"] != HEARTBEAT]
        return got
    finally:
        consumer.close()


def test_traffic_sends_events_as_they_happen_until_down_and_records_the_last(kafka_settings):
    s = kafka_settings
    ensure_topics(s)
    since = datetime.now(timezone.utc) - timedelta(seconds=30)  # 30 s already due, then the clock's pace
    start_traffic(s, since=since, seed=3, scale=40.0)  # ~20 requests a second across the city
    try:
        assert traffic_process(s).info() is not None
        seen = _read(s, lambda got: bool(got) and got[-1][1]["event_time_ms"] / 1000 > time.time() - 1
                     and len(got) > 50)
        assert len(seen) > 50, f"{len(seen)} events in two minutes: see {traffic_process(s).log_file}"
        cut = int(since.timestamp() * 1000)
        assert all(v["event_time_ms"] > cut for _t, v in seen)
        # none from the future: an event reaches the topic only once the clock passed its time (one machine, one
        # clock: no allowance for skew)
        assert all(v["event_time_ms"] / 1000 <= t for t, v in seen)
        ids = [v["event_id"] for _t, v in seen]
        assert len(ids) == len(set(ids))
    finally:
        stopped = lifecycle.down(s)
    assert "traffic" in stopped.stopped and traffic_process(s).info() is None
    # the producer recorded its last event on the way out: everything on the topic, and no event after it
    last = last_sent(s)
    assert last is not None, last_sent_file(s)
    final = _read(s, lambda got: False, timeout_s=5.0)
    assert max(v["event_time_ms"] for _t, v in final) == int(last.timestamp() * 1000)


def test_after_a_kill_9_the_last_event_sent_is_read_from_the_topic(kafka_settings):
    """``kill -9`` leaves no record of the last event sent; the demo's resume point is read from the topic itself
    (``newest_sent``): the newest event there, heartbeats and malformed messages at the tail skipped."""
    import os
    import signal

    from kafka import KafkaProducer

    from ridecast.events import make_event
    from ridecast.stack.traffic import newest_sent

    s = kafka_settings
    ensure_topics(s)
    assert newest_sent(s) is None  # an empty topic: nothing sent
    start_traffic(s, since=datetime.now(timezone.utc) - timedelta(seconds=30), seed=5, scale=40.0)
    proc = traffic_process(s)
    try:
        seen = _read(s, lambda got: len(got) > 50)
        assert len(seen) > 50, f"{len(seen)} events: see {proc.log_file}"
        os.kill(proc.info()["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while proc.info() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.info() is None, "the traffic process survived SIGKILL"
    finally:
        lifecycle.down(s)
    assert last_sent(s) is None  # killed: it wrote nothing on the way out
    everything = _read(s, lambda got: False, timeout_s=5.0)
    newest = max(v["event_time_ms"] for _t, v in everything)
    # after the last event: a heartbeat later than it, and messages the job would dead-letter
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(s), acks="all")
    beat = make_event("hb-after-the-kill", newest + 60_000, HEARTBEAT, "TAMPINES")
    for raw in (json.dumps(beat).encode(), b"not json", b'{"event_time_ms": "soon"}'):
        producer.send(s.kafka.events_topic, raw)
    producer.flush()
    producer.close()
    assert newest_sent(s) == datetime.fromtimestamp(newest / 1000, timezone.utc)
