"""Live traffic (ridecast.sources.live): events wait for their own time, and continue a replay exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ridecast.sources.live import live_events, real_time
from ridecast.sources.simulate import simulate_events


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_each_event_waits_for_its_own_time_and_due_ones_pass_at_once():
    clock = FakeClock(100.0)
    events = [{"event_time_ms": ms} for ms in (90_000, 100_000, 100_500, 103_000)]
    seen: dict[str, int] = {}
    handed = []
    for e in real_time(events, clock=clock, sleep=clock.sleep, seen=seen):
        assert clock() >= e["event_time_ms"] / 1000  # never ahead of the clock
        # the event in hand is not "sent" yet: the record names the one before it
        assert seen.get("last_event_ms") == (handed[-1] if handed else None)
        handed.append(e["event_time_ms"])
    assert handed == [90_000, 100_000, 100_500, 103_000]
    assert seen["last_event_ms"] == 103_000  # the consumer came back after the last: it is done with it
    assert clock.slept == [0.5, 2.5]  # the two due events did not wait; the others waited exactly until due


def test_live_events_continue_a_replay_of_the_same_seed_without_gap_or_overlap():
    # the demo replays the live day up to `since` (from the day before, filtered); the live process sends what is
    # after it: together they must be one stream, each event once
    since = datetime(2025, 3, 8, 0, 10, tzinfo=timezone.utc)  # 08:10 SGT
    day_before = datetime(2025, 3, 7)  # naive = SGT
    until = since + timedelta(hours=1)
    replay = [e for e in simulate_events(day_before, timedelta(days=3), seed=7, scale=0.5)
              if e["event_time_ms"] <= int(until.timestamp() * 1000)]
    cut = int(since.timestamp() * 1000)
    before = [e for e in replay if e["event_time_ms"] <= cut]
    after = []
    for e in live_events(since, seed=7, scale=0.5, days=1):
        if e["event_time_ms"] > int(until.timestamp() * 1000):
            break
        after.append(e)
    assert before and after and all(e["event_time_ms"] > cut for e in after)
    assert before + after == replay
    # trips requested before `since` that end after it are part of the continuation (outcomes, not requests only)
    assert any(e["event_type"] != "requested" for e in after[:50])
