"""Helpers for the tests that run the real streaming job: env per run, waiting on Iceberg, hostile input."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ridecast.config import Settings, get_settings
from ridecast.events import make_event


@contextmanager
def stream_env(home: Path, broker: str, **extra: str) -> Iterator[Settings]:
    """Environment for one streaming run (subprocesses like the feature job inherit it)."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "RIDECAST_HOME": str(home),
        "RIDECAST_KAFKA__BOOTSTRAP_SERVERS": broker,
        "RIDECAST_KAFKA__EVENTS_TOPIC": f"events-{suffix}",
        "RIDECAST_KAFKA__FEATURES_TOPIC": f"features-{suffix}",
        "RIDECAST_KAFKA__DEAD_LETTER_TOPIC": f"dlq-{suffix}",
        "RIDECAST_FLINK__CONSUMER_GROUP": f"g-{suffix}",
        "RIDECAST_FLINK__CHECKPOINT_INTERVAL_S": "3",
        **extra,
    }
    with env_settings(env) as s:
        yield s


@contextmanager
def env_settings(env: dict[str, str]) -> Iterator[Settings]:
    """Settings read from ``RIDECAST_*`` variables set for the block (subprocesses inherit them)."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            get_settings.cache_clear()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, on_timeout: Callable[[], str] = str) -> None:
    """Poll until true; the timeout only bounds a hung run, it never decides a result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}. {on_timeout()}")


def hostile_messages(zone: str, t_ms: int) -> list[tuple[bytes | None, str]]:
    """(raw message, what it is) — each must land in the dead letters, none may stop the job."""
    ok = make_event("hostile-base", t_ms, "requested", zone)
    far_future = make_event("hostile-future", t_ms + 10 * 365 * 86_400_000, "requested", zone)
    return [
        (b"{not json", "bad JSON"),
        (b"", "empty message"),
        (None, "tombstone"),
        (b"\xff\xfe\x00garbage", "binary garbage"),
        (b"[1, 2, 3]", "JSON array, not an object"),
        (json.dumps({**ok, "event_id": "h-wrongtype", "fare": "12.50"}).encode(), "string where a number belongs"),
        (json.dumps({**ok, "event_id": "h-objtype", "surge": {"x": 1}}).encode(), "object where a number belongs"),
        (json.dumps({**ok, "event_id": "h-time", "event_time_ms": "yesterday"}).encode(), "non-numeric time"),
        (json.dumps({**ok, "event_id": "h-huge", "pickup_zone": zone * 5000}).encode(), "huge field"),
        (json.dumps({**ok, "event_id": "h-zone", "pickup_zone": "ATLANTIS"}).encode(), "unknown zone"),
        (json.dumps({**ok, "event_id": "h-range", "wait_seconds": -5.0}).encode(), "negative wait"),
        (json.dumps({**ok, "event_id": "h-missing", "event_type": None}).encode(), "missing type"),
        (json.dumps({**ok, "event_id": "h-version", "schema_version": 2}).encode(), "future schema version"),
        (json.dumps(far_future).encode(), "far-future timestamp"),
        (json.dumps({**ok, "event_id": "h-deep", "dropoff_zone": [[[[[]]]]]}).encode(), "nested junk"),
    ]
