"""The clock a backfill's event times are judged by: the file's newest event as the job's source reads it
(``events.event_time_in_text``), capped by the wall clock; an absurd future time does not move it."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from ridecast.events import event_time_in_text, make_event
from ridecast.stack.pipeline import _scan_file

pytestmark = pytest.mark.unit

WALL = 1_796_000_000_000  # 2026-11-30
T2010 = 1_291_161_600_000  # 2010-12-01


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_clock_is_the_newest_plausible_event_time_of_the_file(tmp_path, trailing_newline):
    rng = random.Random(3)
    lines = [json.dumps(make_event(f"e{i}", T2010 + rng.randrange(10**9), "requested", "UK")) for i in range(5000)]
    newest = max(event_time_in_text(line) for line in lines)
    lines += [
        json.dumps(make_event("future", WALL + 10 * 365 * 86_400_000, "requested", "UK")),  # ignored
        '{"meta": {"event_time_ms": %d}, "event_time_ms": 5}' % (newest + 60_000),  # the source reads the first
        '{"event_time_ms": "yesterday"}', "not json", "", '{"event_time_ms": 1e999}',
    ]
    rng.shuffle(lines)
    path = tmp_path / "history.jsonl"
    path.write_bytes(("\n".join(lines) + ("\n" if trailing_newline else "")).encode())
    scan = _scan_file(path, wall_ms=WALL, max_future_skew_s=900)
    assert scan.clock_ms == newest + 60_000
    assert scan.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_clock_never_passes_the_wall_clock_and_defaults_to_it(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(make_event("skew", WALL + 60_000, "requested", "UK")) + "\n")  # within the skew
    assert _scan_file(path, wall_ms=WALL, max_future_skew_s=900).clock_ms == WALL
    path.write_text("no times here\n")
    assert _scan_file(path, wall_ms=WALL, max_future_skew_s=900).clock_ms == WALL
