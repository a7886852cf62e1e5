"""``python -m ridecast.sources.live``: simulated trip events sent to Kafka as the wall clock reaches them.

The simulation is deterministic per local day and seed, so the events after ``--since`` are exactly the ones a
later replay of the same seed and scale would send after that moment: the demo streams "today so far" up to a
moment, this process continues from there, and the demo's next run resumes after the newest event in silver,
so no event is sent twice (``ridecast.demo.run._stream_live``).

Each event waits for its own time (:func:`real_time`) instead of being paced from the first one: a paced replay
that starts a little before its first event would run ahead of the clock, and events from the future are dead
letters. Watermark heartbeats ride along as in every stream (:func:`ridecast.sources.producer.produce`); a stopped
process sends no closing heartbeat, so the windows still open stay open for whatever streams next.

Started and stopped as the stack's ``traffic`` process (:mod:`ridecast.stack.traffic`); SIGTERM sends what is
buffered and closes the producer.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from ridecast.config import Settings, get_settings
from ridecast.sources.demand import SGT

__all__ = ["follow", "live_events", "real_time"]

log = logging.getLogger("ridecast.live")


def real_time(events: Iterable[dict[str, Any]], *, clock: Callable[[], float] = time.time,
              sleep: Callable[[float], None] = time.sleep,
              seen: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """Each event once ``clock()`` (epoch seconds) has reached its ``event_time_ms``; events already due pass at
    once. ``seen["last_event_ms"]`` is the newest event the consumer is done with: it is set when the consumer
    asks for the next one (the producer sent the previous event by then), so a stop while waiting never records an
    event that was not sent."""
    last: int | None = None
    for event in events:
        if seen is not None and last is not None:
            seen["last_event_ms"] = last
        wait = event["event_time_ms"] / 1000.0 - clock()
        if wait > 0:
            sleep(wait)
        last = int(event["event_time_ms"])
        yield event
    if seen is not None and last is not None:
        seen["last_event_ms"] = last


def live_events(since: datetime, *, seed: int, scale: float, days: float = 7.0) -> Iterator[dict[str, Any]]:
    """The simulated events strictly after ``since``, for ``days``. Generation starts at the local midnight
    before ``since``'s day: a trip requested before midnight may still end after ``since``."""
    from ridecast.sources.simulate import simulate_events

    start = (since.astimezone(SGT) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    end = since + timedelta(days=days)
    lo_ms = int(since.timestamp() * 1000)
    return (e for e in simulate_events(start, end - start, seed=seed, scale=scale) if e["event_time_ms"] > lo_ms)


def follow(settings: Settings, since: datetime, *, seed: int, scale: float, days: float = 7.0) -> int | None:
    """Send :func:`live_events` in real time until they run out (``days``) or the process is stopped (SIGTERM:
    ``SystemExit``); either way the last event's time goes to :func:`ridecast.stack.traffic.last_sent_file`, and
    is returned."""
    from ridecast.sources.producer import produce
    from ridecast.stack.traffic import last_sent_file

    seen: dict[str, int] = {}
    try:
        produce(real_time(live_events(since, seed=seed, scale=scale, days=days), seen=seen), settings,
                progress=False)
    finally:  # produce() flushed and closed its producer on the way out
        path = last_sent_file(settings)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_event_ms": seen.get("last_event_ms")}))
        tmp.replace(path)
    return seen.get("last_event_ms")


def _stop_by_exit(signum, _frame) -> None:
    log.info("received %s: stopping", signal.Signals(signum).name)
    raise SystemExit(0)  # unwinds produce(): it flushes and closes its producer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ridecast.sources.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--since", required=True, type=datetime.fromisoformat,
                   help="ISO time; events after it are sent (naive = UTC)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--days", type=float, default=7.0, help="stop after this much simulated time")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    since = args.since if args.since.tzinfo else args.since.replace(tzinfo=timezone.utc)
    signal.signal(signal.SIGTERM, _stop_by_exit)
    settings = get_settings()
    log.info("sending simulated events after %s (seed %d, scale %g) as they happen, to %s",
             since.isoformat(), args.seed, args.scale, settings.kafka.events_topic)
    try:
        follow(settings, since, seed=args.seed, scale=args.scale, days=args.days)
    finally:
        log.info("stopped; the last event sent: %s", _last(settings))
    return 0


def _last(settings: Settings) -> str:
    from ridecast.stack.traffic import last_sent

    t = last_sent(settings)
    return "none" if t is None else t.isoformat()


if __name__ == "__main__":
    sys.exit(main())
