"""Live traffic: simulated trip events sent as they happen, by a managed background process, until stopped.

Why: a stream that stops leaves the service answering from features that age until they are stale (after
``serving.max_feature_age_s`` it falls back to the seasonal-naive value and says so). ``make demo`` ends with
the service up; with live traffic behind it, the forecasts it answers an hour later are still made from the last
minutes of demand, as they would be in production.

The stack does not import ``ridecast.sources`` (it sits below it): it starts :mod:`ridecast.sources.live` by
module name, as it starts ``serve``. ``down`` stops it first, so nothing is sent to a broker that is stopping.

A replay that resumes "after the newest event in silver" (the demo) must first wait until silver holds the last
event the producer sent: the feature job lands what it read at its next checkpoint, and a resume point read
before that would send the rest again. That event is read from the topic itself (:func:`newest_sent`), so it is
right however the producer ended: SIGTERM, a crash or ``kill -9``. On SIGTERM the producer also writes the time
of its last event (:func:`last_sent_file`), its own report of where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ridecast.config import Settings, get_settings, repo_root
from ridecast.stack.process import ManagedProcess

__all__ = ["last_sent", "last_sent_file", "newest_sent", "start_traffic", "stop_traffic", "traffic_command",
           "traffic_process"]


def traffic_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("traffic", s.run_dir, s.log_dir)


def traffic_command(*, since: datetime, seed: int, scale: float) -> list[str]:
    """The live producer's command line (see :mod:`ridecast.sources.live` for its options)."""
    return [sys.executable, "-m", "ridecast.sources.live", "--since", since.isoformat(), "--seed", str(seed),
            "--scale", f"{scale:g}"]


def start_traffic(settings: Settings | None = None, *, since: datetime, seed: int, scale: float) -> dict:
    """Start the live producer (a running one is kept: its record is returned); it sends the simulated events
    after ``since`` as the wall clock reaches them."""
    s = settings or get_settings()
    return traffic_process(s).start(traffic_command(since=since, seed=seed, scale=scale), cwd=repo_root(),
                                    extra={"since": since.isoformat(), "seed": seed, "scale": scale})


def stop_traffic(settings: Settings | None = None, timeout: float = 15.0) -> bool:
    """SIGTERM (the producer sends what it holds and closes), SIGKILL after ``timeout``."""
    return traffic_process(settings).stop(timeout=timeout)


def last_sent_file(settings: Settings | None = None) -> Path:
    """Where the stopped producer leaves ``{"last_event_ms": ...}`` (removed by whoever waited for it)."""
    return traffic_process(settings).run_dir / "traffic.last.json"


def last_sent(settings: Settings | None = None) -> datetime | None:
    """The time of the last event the live producer sent before it stopped, or None (none recorded)."""
    try:
        ms = json.loads(last_sent_file(settings).read_text())["last_event_ms"]
    except (FileNotFoundError, ValueError, KeyError):
        return None
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc)


def newest_sent(settings: Settings | None = None, *, tail: int = 200, timeout_s: float = 10.0) -> datetime | None:
    """The newest event time among the last ``tail`` messages of each partition of the events topic (heartbeats
    and messages that are not events skipped), or None. The producers send in event-time order, so this is the
    last event sent, whatever stopped the producer; what it had not delivered is not on the topic, and not
    counted."""
    from kafka import KafkaConsumer, TopicPartition

    from ridecast.events import HEARTBEAT, parse_message
    from ridecast.stack.broker import bootstrap_servers

    s = settings or get_settings()
    topic = s.kafka.events_topic
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(s), group_id=None, enable_auto_commit=False,
                             client_id="ridecast-traffic-resume")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return None
        consumer.assign(parts)
        ends = consumer.end_offsets(parts, timeout_ms=int(timeout_s * 1000))
        firsts = consumer.beginning_offsets(parts, timeout_ms=int(timeout_s * 1000))
        left = {tp: end for tp, end in ends.items() if end > firsts[tp]}
        for tp in left:
            consumer.seek(tp, max(firsts[tp], ends[tp] - tail))
        newest: int | None = None
        deadline = time.monotonic() + timeout_s
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading the tail of {topic} took over {timeout_s:.0f} s")
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    try:
                        event = parse_message(rec.value)
                        ms = int(event["event_time_ms"]) if event.get("event_type") != HEARTBEAT else None
                    except (ValueError, TypeError, KeyError, AttributeError):
                        ms = None  # a malformed message: the job dead-letters it, it is no resume point
                    if ms is not None and (newest is None or ms > newest):
                        newest = ms
            # by position, not by the last record's offset: offsets may have gaps (a compacted or transactional
            # topic), and a partition whose tail has none would otherwise be waited on until the timeout
            for tp in [tp for tp in left if consumer.position(tp) >= left[tp]]:
                left.pop(tp)
        return None if newest is None else datetime.fromtimestamp(newest / 1000, timezone.utc)
    finally:
        consumer.close()
