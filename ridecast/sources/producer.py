"""Send v1 events to the events topic, optionally paced by event time, with watermark heartbeats.

Why it is built this way:

* **Keyed by pickup zone**, so one zone's events stay in one partition, in order, and Flink's per-key
  state sees them in the order they happened.
* **acks=all with linger and large batches**: kafka-python is client-bound (~8-10k msg/s per core), so
  batching is where throughput comes from; durability is not traded for it.
* **Heartbeats to every partition.** Flink's watermark is the minimum over partitions: a partition with no
  recent events holds every window open. So, every ``heartbeat_every_s`` of *event time*, each partition
  gets a ``heartbeat`` event (explicit partition, no demand) stamped with the event time about to be sent
  (never ahead of it, so no real event becomes late). At the end each partition gets a closing heartbeat
  ``close_after`` past the last event, far enough for the watermark to pass the last windows, but never past
  the wall clock: a stream that ends at "now" (a live feed caught up, the demo's "today so far") would otherwise
  move the watermark into the future, and the events that really happen next would all arrive late. A caller that
  knows where its stream's time stops (a replay up to a moment, continued later) says so with ``close_at``.
* **Pacing by event time** (``speedup``) makes a recorded or simulated history look live: with
  speedup=720, one event-time hour passes in 5 s of wall time. Without it, send as fast as possible.
* Nothing here reads end offsets; the returned counts are what was sent and
  acknowledged.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from ridecast.config import Settings, get_settings
from ridecast.events import HEARTBEAT, load_zones, make_event

__all__ = ["ProduceStats", "closing_heartbeat_ms", "default_close_after", "produce"]


@dataclass(frozen=True)
class ProduceStats:
    sent: int  # data events acknowledged (heartbeats not included)
    heartbeats: int
    seconds: float
    rate: float  # data events per wall second
    partitions: int
    first_event_ms: int | None
    last_event_ms: int | None


def default_close_after(settings: Settings) -> timedelta:
    """Largest window + one slide + the watermark delay: enough for every window to close."""
    f = settings.flink
    return timedelta(minutes=max(f.window_minutes) + f.slide_minutes, seconds=f.watermark_delay_s)


def closing_heartbeat_ms(last_ms: int, close_at_ms: int, now_ms: int) -> int:
    """Where the closing heartbeat goes: at ``close_at_ms``, capped at ``now_ms`` (what is not yet closed stays
    open for the events still to come), and never before the last event itself."""
    return max(last_ms, min(close_at_ms, now_ms))


class _Progress:
    """Rich live progress on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.enabled = enabled
        self._rich = None
        self._last = 0.0
        self._t0 = time.monotonic()
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self._rich = Progress(
                    TextColumn("[bold]producing"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:>8.0f} ev/s"), TimeElapsedColumn(), console=console,
                )
                self._rich.start()
                self._task = self._rich.add_task("produce", total=total, rate=0.0)

    def update(self, sent: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < (0.25 if self._rich else 5.0):
            return
        self._last = now
        rate = sent / max(now - self._t0, 1e-9)
        if self._rich is not None:
            self._rich.update(self._task, completed=sent, rate=rate)
        else:
            print(f"produced {sent} events ({rate:.0f}/s)", file=sys.stderr, flush=True)

    def close(self, sent: int) -> None:
        self.update(sent, force=True)
        if self._rich is not None:
            self._rich.stop()


def produce(
    events: Iterable[dict[str, Any]],
    settings: Settings | None = None,
    *,
    speedup: float | None = None,
    heartbeat_every_s: float = 60.0,
    close_after: timedelta | None = None,
    close_at: datetime | None = None,
    heartbeat_zone: str | None = None,
    topic: str | None = None,
    total: int | None = None,
    progress: bool = True,
) -> ProduceStats:
    """Send ``events`` (v1 dicts in event-time order) to the events topic; returns what was sent.

    ``heartbeat_zone`` defaults to the first zone of the configured zone list (a heartbeat must still be a
    valid event). ``total`` only sizes the progress bar. Raises if any send failed after retries.
    """
    from kafka import KafkaProducer

    from ridecast.stack.broker import bootstrap_servers, ensure_topics

    s = settings or get_settings()
    if speedup is not None and speedup <= 0:
        raise ValueError("speedup must be > 0")
    if heartbeat_every_s <= 0:
        raise ValueError("heartbeat_every_s must be > 0")
    topic = topic or s.kafka.events_topic
    close_ms = int((close_after if close_after is not None else default_close_after(s)).total_seconds() * 1000)
    hb_zone = heartbeat_zone or load_zones(s.zones_file)[0].zone
    hb_every_ms = int(heartbeat_every_s * 1000)
    run = uuid.uuid4().hex[:12]

    servers = bootstrap_servers(s)
    if topic == s.kafka.events_topic:  # explicit creation: auto-create would pick the broker's partition count
        ensure_topics(s, servers)
    producer = KafkaProducer(
        bootstrap_servers=servers,
        allow_auto_create_topics=False,
        client_id="ridecast-producer",
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_in_flight_requests_per_connection=5,
        retries=5,
    )
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    errors: list[BaseException] = []
    partitions = sorted(producer.partitions_for(topic) or [])
    if not partitions:
        producer.close()
        raise RuntimeError(f"topic {topic!r} has no partitions: create it first (ridecast.stack.broker.ensure_topics)")

    hb_count = 0

    def heartbeat_all(ts: int) -> None:
        nonlocal hb_count
        for p in partitions:
            hb = make_event(f"hb-{run}-{hb_count}", ts, HEARTBEAT, hb_zone)
            producer.send(topic, dumps(hb).encode(), key=hb_zone.encode(), partition=p).add_errback(errors.append)
            hb_count += 1

    bar = _Progress(progress, total)
    sent = 0
    first_ms: int | None = None
    last_ms: int | None = None
    next_hb = None
    t0 = time.monotonic()
    try:
        for event in events:
            ts = int(event["event_time_ms"])
            if first_ms is None:
                first_ms, next_hb = ts, ts
            if speedup is not None:
                delay = t0 + (ts - first_ms) / 1000.0 / speedup - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if ts >= next_hb:
                heartbeat_all(ts)
                next_hb = ts + hb_every_ms
            producer.send(topic, dumps(event).encode(), key=event["pickup_zone"].encode()).add_errback(errors.append)
            sent += 1
            last_ms = ts if last_ms is None else max(last_ms, ts)
            if errors:
                break
            bar.update(sent)
        if last_ms is not None and not errors:
            close_at_ms = int(close_at.timestamp() * 1000) if close_at is not None else last_ms + close_ms
            heartbeat_all(closing_heartbeat_ms(last_ms, close_at_ms, int(time.time() * 1000)))
        producer.flush()
    finally:
        producer.close()
        bar.close(sent)
    if errors:
        raise RuntimeError(f"{len(errors)} send(s) failed, first: {errors[0]!r}")
    seconds = time.monotonic() - t0
    return ProduceStats(
        sent=sent,
        heartbeats=hb_count,
        seconds=seconds,
        rate=sent / seconds if seconds > 0 else 0.0,
        partitions=len(partitions),
        first_event_ms=first_ms,
        last_event_ms=last_ms,
    )
