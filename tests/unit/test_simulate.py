"""Simulated trip events: valid v1 events, reproducible, causal, and behaving like a ride-hailing market."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from ridecast.events import load_zones, reject_reason
from ridecast.sources.deliver import write_jsonl
from ridecast.sources.demand import SGT, rain_spells
from ridecast.sources.simulate import simulate_events, trip_id

pytestmark = pytest.mark.unit

ZONES = load_zones()
KIND = {z.zone: z.kind for z in ZONES}
DAY = date(2025, 3, 4)  # a Tuesday with an afternoon rain spell (seed 0)
START = datetime(2025, 3, 4, 6, 0)  # naive = SGT


@pytest.fixture(scope="module")
def day_events() -> list[dict]:
    """06:00-20:00 of a weekday: peaks, midday and a rain spell (~40k requests, ~2 s)."""
    return list(simulate_events(START, timedelta(hours=14), seed=0, zones=ZONES))


def _local_minute(ms: int) -> int:
    return (ms - int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=SGT).timestamp() * 1000)) // 60_000


def test_every_event_is_a_valid_v1_event(day_events):
    zones = {z.zone for z in ZONES}
    now = max(e["event_time_ms"] for e in day_events) + 1
    reasons = Counter(reject_reason(e, zones, now_ms=now) for e in day_events)
    assert reasons == Counter({None: len(day_events)})
    # and as the wire sees them
    assert all(reject_reason(json.dumps(e), zones, now_ms=now) is None for e in day_events[:2000])


def test_events_are_in_event_time_order_with_unique_ids(day_events):
    times = [e["event_time_ms"] for e in day_events]
    assert times == sorted(times)
    assert len({e["event_id"] for e in day_events}) == len(day_events)
    lo = int(START.replace(tzinfo=SGT).timestamp() * 1000)
    hi = lo + 14 * 3_600_000
    assert all(lo <= e["event_time_ms"] < hi for e in day_events if e["event_type"] == "requested")


def test_outcomes_follow_their_own_request(day_events):
    requests = {trip_id(e["event_id"]): e for e in day_events if e["event_type"] == "requested"}
    outcomes = [e for e in day_events if e["event_type"] != "requested"]
    per_trip = Counter(trip_id(e["event_id"]) for e in outcomes)
    assert set(per_trip) == set(requests)  # every request resolved, every outcome has a request
    assert set(per_trip.values()) == {1}
    for e in outcomes:
        req = requests[trip_id(e["event_id"])]
        assert e["event_time_ms"] > req["event_time_ms"]
        assert (e["pickup_zone"], e["dropoff_zone"], e["surge"]) == (
            req["pickup_zone"], req["dropoff_zone"], req["surge"]
        )
        if e["event_type"] == "completed":
            assert "fare" in e and e["event_time_ms"] - req["event_time_ms"] >= e["wait_seconds"] * 1000
        else:
            assert "fare" not in e and e["event_time_ms"] - req["event_time_ms"] == e["wait_seconds"] * 1000


def test_fares_surge_and_cancellations_are_plausible(day_events):
    fares = np.array([e["fare"] for e in day_events if e["event_type"] == "completed"])
    lo, med, hi = np.percentile(fares, [5, 50, 95])
    assert 8 <= lo and 12 <= med <= 30 and hi <= 60
    surges = np.array([e["surge"] for e in day_events])
    assert surges.min() >= 1.0 and surges.max() <= 3.0 and 0.05 < np.mean(surges > 1.0) < 0.9
    types = Counter(e["event_type"] for e in day_events)
    assert 0.04 < types["cancelled"] / types["requested"] < 0.3


def test_long_waits_make_riders_cancel(day_events):
    outcome = {trip_id(e["event_id"]): e["event_type"] for e in day_events if e["event_type"] != "requested"}
    requests = [e for e in day_events if e["event_type"] == "requested"]
    tight = [outcome[trip_id(e["event_id"])] == "cancelled" for e in requests if e["surge"] >= 1.5]
    calm = [outcome[trip_id(e["event_id"])] == "cancelled" for e in requests if e["surge"] == 1.0]
    assert len(tight) > 200 and np.mean(tight) > 1.5 * np.mean(calm)


def _by_request_minute(events: list[dict], day: date) -> tuple[list[int], list[tuple[int, dict]]]:
    """Request minutes (local, of ``day``) and each completion paired with its request's minute."""
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=SGT).timestamp() * 1000)
    minute = {trip_id(e["event_id"]): (e["event_time_ms"] - midnight) // 60_000
              for e in events if e["event_type"] == "requested"}
    done = [(minute[trip_id(e["event_id"])], e) for e in events if e["event_type"] == "completed"]
    return list(minute.values()), done


def test_rain_lifts_requests_waits_and_surge(day_events):
    spells = rain_spells(DAY, 0)
    assert spells, "fixture day must have rain"

    def wet(m: int) -> bool:
        return any(s + 15 <= m < e - 15 for s, e, _ in spells)

    # the same minutes on the next dry weekday: same profile, no rain
    dry_day = next(DAY + timedelta(days=i) for i in range(1, 30)
                   if (DAY + timedelta(days=i)).weekday() < 5 and not rain_spells(DAY + timedelta(days=i), 0))
    dry_events = list(simulate_events(datetime.combine(dry_day, START.time()), timedelta(hours=14), zones=ZONES))
    rain_req, rain_done = _by_request_minute(day_events, DAY)
    dry_req, dry_done = _by_request_minute(dry_events, dry_day)
    rain = [e for m, e in rain_done if wet(m)]
    dry = [e for m, e in dry_done if wet(m)]
    assert sum(map(wet, rain_req)) > 1.1 * sum(map(wet, dry_req))
    assert np.median([e["wait_seconds"] for e in rain]) > 1.1 * np.median([e["wait_seconds"] for e in dry])
    assert np.mean([e["surge"] for e in rain]) > np.mean([e["surge"] for e in dry]) + 0.1


def test_morning_trips_go_to_the_cbd_evening_trips_go_home(day_events):
    def cbd_share(h0: int, h1: int) -> float:
        sel = [e for e in day_events if e["event_type"] == "requested" and KIND[e["pickup_zone"]] == "heartland"
               and h0 * 60 <= _local_minute(e["event_time_ms"]) < h1 * 60]
        return float(np.mean([KIND[e["dropoff_zone"]] == "cbd" for e in sel]))

    assert cbd_share(7, 9) > 3 * cbd_share(17, 20)


def test_deterministic_by_seed_and_independent_of_how_the_window_is_cut():
    start, hours = datetime(2025, 3, 7, 23, 0), timedelta(hours=2)  # crosses midnight
    a = list(simulate_events(start, hours, seed=11, zones=ZONES))
    b = list(simulate_events(start, hours, seed=11, zones=ZONES))
    c = list(simulate_events(start, hours, seed=12, zones=ZONES))
    assert a == b
    strip = lambda evs: [(e["event_time_ms"], e["pickup_zone"], e["event_type"]) for e in evs]  # noqa: E731
    assert strip(a) != strip(c)
    halves = list(simulate_events(start, timedelta(hours=1), seed=11, zones=ZONES)) + list(
        simulate_events(start + timedelta(hours=1), timedelta(hours=1), seed=11, zones=ZONES)
    )
    key = lambda e: (e["event_time_ms"], e["event_id"])  # noqa: E731
    assert sorted(halves, key=key) == sorted(a, key=key)


def test_streaming_is_lazy():
    """A month-long stream starts yielding without generating the month."""
    gen = simulate_events(datetime(2025, 3, 1), timedelta(days=30), seed=0, zones=ZONES)
    first = [next(gen) for _ in range(10)]
    assert all(e["event_time_ms"] < int(datetime(2025, 3, 2, tzinfo=SGT).timestamp() * 1000) for e in first)
    gen.close()


def test_write_jsonl_round_trip(tmp_path):
    events = list(simulate_events(datetime(2025, 3, 4, 8), timedelta(minutes=10), seed=2, zones=ZONES))
    path = tmp_path / "out" / "sim.jsonl"
    assert write_jsonl(iter(events), path) == len(events) > 100
    assert [json.loads(line) for line in path.read_text().splitlines()] == events
    assert [p.name for p in path.parent.iterdir()] == ["sim.jsonl"]  # no temporary left behind
