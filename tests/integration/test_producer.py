"""Producer round trip against the real session broker: every event once, heartbeats on every partition."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from ridecast.config import get_settings
from ridecast.events import HEARTBEAT, load_zones, reject_reason
from ridecast.sources.producer import closing_heartbeat_ms, default_close_after, produce
from ridecast.sources.simulate import simulate_events
from ridecast.stack.broker import bootstrap_servers, ensure_topics

pytestmark = pytest.mark.integration

PARTITIONS = 3


def _consume(settings, expected: int, idle_s: float = 20.0) -> list:
    """Read the events topic from the beginning until ``expected`` records arrived or nothing came for idle_s.

    Never stops on end_offsets (Tansu reports them wrong); assign() avoids a consumer group join.
    """
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.kafka.events_topic
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(settings), enable_auto_commit=False,
                             group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=1000)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records, last = [], time.monotonic()
        while len(records) < expected and time.monotonic() - last < idle_s:
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            for recs in batch.values():
                records.extend(recs)
            if batch:
                last = time.monotonic()
        # anything beyond the expected count would be a duplicate: give it a short chance to show up
        records.extend(r for recs in consumer.poll(timeout_ms=1000).values() for r in recs)
        return records
    finally:
        consumer.close()


@pytest.fixture
def three_partitions(kafka_settings, monkeypatch):
    monkeypatch.setenv("RIDECAST_KAFKA__PARTITIONS", str(PARTITIONS))
    get_settings.cache_clear()
    s = get_settings()
    assert s.kafka.partitions == PARTITIONS and s.kafka.events_topic == kafka_settings.kafka.events_topic
    ensure_topics(s)
    return s


def test_round_trip_every_event_once_and_heartbeats_everywhere(three_partitions):
    s = three_partitions
    zones = load_zones(s.zones_file)
    events = list(simulate_events(datetime(2025, 3, 7, 22, 0), timedelta(minutes=20), seed=4, zones=zones))
    stats = produce(iter(events), s, heartbeat_every_s=120, progress=False)
    assert stats.sent == len(events) and stats.partitions == PARTITIONS
    assert stats.last_event_ms == events[-1]["event_time_ms"]

    records = _consume(s, expected=stats.sent + stats.heartbeats)
    assert len(records) == stats.sent + stats.heartbeats
    values = [json.loads(r.value) for r in records]
    data = [v for v in values if v["event_type"] != HEARTBEAT]
    beats = [(r.partition, v) for r, v in zip(records, values) if v["event_type"] == HEARTBEAT]

    # every event exactly once, unchanged
    assert Counter(v["event_id"] for v in data) == Counter(e["event_id"] for e in events)
    assert {v["event_id"]: v for v in data} == {e["event_id"]: e for e in events}
    # keyed by pickup zone: a zone lives in one partition
    zone_parts = defaultdict(set)
    for r, v in zip(records, values):
        if v["event_type"] != HEARTBEAT:
            assert r.key.decode() == v["pickup_zone"]
            zone_parts[v["pickup_zone"]].add(r.partition)
    assert all(len(p) == 1 for p in zone_parts.values())

    # heartbeats: valid events, periodic on every partition, and a closing one past the last windows
    now = stats.last_event_ms + 10**9
    assert all(reject_reason(v, {z.zone for z in zones}, now_ms=now) is None for _, v in beats)
    assert len({v["event_id"] for _, v in beats}) == len(beats) == stats.heartbeats
    per_part = defaultdict(list)
    for p, v in beats:
        per_part[p].append(v["event_time_ms"])
    assert set(per_part) == set(range(PARTITIONS))
    close_ms = stats.last_event_ms + int(default_close_after(s).total_seconds() * 1000)
    ts = [e["event_time_ms"] for e in events]
    max_event_gap = max(b - a for a, b in zip(ts, ts[1:]))
    for times in per_part.values():
        times = sorted(times)
        assert times[0] == stats.first_event_ms and times[-1] == close_ms
        gaps = [b - a for a, b in zip(times[:-1], times[1:-1])]
        # one heartbeat per 120 s of event time: never more often, late only by the wait for the next event
        assert len(gaps) >= 5 and all(120_000 <= g <= 120_000 + max_event_gap for g in gaps)
    # within a partition time never goes backwards: a heartbeat cannot make a later event late
    by_part = defaultdict(list)
    for r, v in zip(records, values):
        by_part[r.partition].append((r.offset, v["event_time_ms"]))
    for rows in by_part.values():
        times = [t for _, t in sorted(rows)]
        assert times == sorted(times)


def test_speedup_paces_by_event_time(three_partitions):
    s = three_partitions
    events = list(simulate_events(datetime(2025, 3, 4, 3, 0), timedelta(minutes=10), seed=1,
                                  zones=load_zones(s.zones_file)))
    requests = [e for e in events if e["event_type"] == "requested"]
    span_s = (requests[-1]["event_time_ms"] - requests[0]["event_time_ms"]) / 1000
    stats = produce(iter(requests), s, speedup=600, progress=False, close_after=timedelta(minutes=1))
    assert stats.sent == len(requests)
    assert stats.seconds >= span_s / 600 * 0.99  # cannot be faster than event time / speedup


def test_a_stream_that_ends_now_does_not_close_the_future(three_partitions):
    """A live feed caught up to the wall clock: its closing heartbeat stops at "now". Stamped ``close_after`` past
    the last event (65 minutes by default) it would move the watermark into the future, and every event that really
    happens in the next hour would arrive late."""
    s = three_partitions
    now = datetime.now(timezone.utc)
    events = [e for e in simulate_events(now - timedelta(minutes=20), timedelta(minutes=20), seed=5,
                                         zones=load_zones(s.zones_file))
              if e["event_time_ms"] <= now.timestamp() * 1000]  # outcomes still to come are not sent
    before_ms = int(time.time() * 1000)
    stats = produce(iter(events), s, heartbeat_every_s=120, progress=False)
    after_ms = int(time.time() * 1000)
    records = _consume(s, expected=stats.sent + stats.heartbeats)
    closing: dict[int, int] = defaultdict(int)
    for r in records:
        v = json.loads(r.value)
        if v["event_type"] == HEARTBEAT:
            closing[r.partition] = max(closing[r.partition], v["event_time_ms"])
    assert set(closing) == set(range(PARTITIONS))
    close_ms = int(default_close_after(s).total_seconds() * 1000)
    for ts in closing.values():
        assert max(before_ms, stats.last_event_ms) <= ts <= after_ms < stats.last_event_ms + close_ms


def test_a_replay_up_to_a_moment_closes_up_to_that_moment(three_partitions):
    """``close_at``: a sped-up replay that stops at a moment (the demo's "today up to now", topped up later) closes
    its windows up to that moment, not up to the clock at the end of the replay, which the next part would find
    already passed."""
    s = three_partitions
    until = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    events = [e for e in simulate_events(until - timedelta(minutes=20), timedelta(minutes=20), seed=6,
                                         zones=load_zones(s.zones_file))
              if e["event_time_ms"] <= until.timestamp() * 1000]
    stats = produce(iter(events), s, progress=False, close_at=until)
    closing = [json.loads(r.value)["event_time_ms"] for r in _consume(s, expected=stats.sent + stats.heartbeats)
               if json.loads(r.value)["event_type"] == HEARTBEAT]
    assert max(closing) == until.timestamp() * 1000 and closing.count(max(closing)) == PARTITIONS


def test_closing_heartbeat_is_capped_by_the_clock_not_before_the_last_event():
    assert closing_heartbeat_ms(1_000, 1_500, now_ms=10_000) == 1_500  # a replay of the past: as asked
    assert closing_heartbeat_ms(1_000, 1_500, now_ms=1_200) == 1_200  # caught up: the clock
    assert closing_heartbeat_ms(1_000, 1_500, now_ms=900) == 1_000  # events ahead of this clock: never backwards
