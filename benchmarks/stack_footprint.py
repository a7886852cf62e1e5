"""Peak memory of the embedded stack under load, without and with Trino (issue 8: ≤ 4 GiB and ≤ 8 GiB).

    .venv/bin/python -m benchmarks.stack_footprint                 # 3 runs, 300k events each
    .venv/bin/python -m benchmarks.stack_footprint --runs 1 --events 100000

Each run, in a throw-away state dir: the Apache Kafka broker and the streaming feature job (writing Iceberg
through its sink) take ``--events`` simulated events as fast as the producer sends them, until the job has
committed them all ("stack" phase); then the embedded Trino starts over the same catalog and runs the README's
queries over the lake while the job keeps consuming a second batch ("with Trino" phase). The RSS of every
process the stack started (broker, job driver + JVM, Trino, this process and its children) is summed every
0.5 s (:class:`benchmarks.common.MemorySampler`); the figure is each phase's peak, and the median over runs.
Named baselines: the issue's goals (4 GiB without Trino, 8 GiB with it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.common import GIB, MemorySampler, bench_settings, print_table, running_broker, wait_for, write_result
from ridecast.config import Settings

GOAL_WITHOUT_TRINO_GIB = 4.0
GOAL_WITH_TRINO_GIB = 8.0

QUERIES = (
    "SELECT zone, sum(requests) AS requests FROM iceberg.gold.zone_features WHERE window_minutes = 60 "
    "GROUP BY zone ORDER BY requests DESC LIMIT 10",
    "SELECT reason, count(*) FROM iceberg.ops.dead_letters GROUP BY reason",
    "SELECT pickup_zone, approx_percentile(wait_seconds, 0.9) FROM iceberg.silver.trip_events "
    "GROUP BY pickup_zone",
    'SELECT count(*) FROM iceberg.gold."zone_features$snapshots"',
)


def _rows(settings: Settings, ident: str) -> int:
    from iceberg_catalog.catalog import open_catalog

    snap = open_catalog(settings).load_table(ident).current_snapshot()
    return int(snap.summary.additional_properties.get("total-records", 0)) if snap and snap.summary else 0


def _send(settings: Settings, events: int, start: datetime, seed: int) -> int:
    from ridecast.sources.producer import produce
    from ridecast.sources.simulate import simulate_events

    sim = simulate_events(start, timedelta(days=3), seed=seed, scale=max(1.0, events / 250_000))
    batch = [e for _, e in zip(range(events), sim, strict=False)]
    return produce(batch, settings, progress=False).sent


def run_once(events: int, seed: int) -> dict[str, Any]:
    from ridecast.sql import run_sql
    from ridecast.stack.pipeline import start_stream, stop_stream
    from ridecast.stack.trino import start_trino, stop_trino

    env = {"RIDECAST_FLINK__STARTUP_MODE": "earliest-offset"}
    with bench_settings("footprint", **env) as settings, MemorySampler(settings) as mem:
        # two 3-day batches ending a day ago: every event passes the job's age and future checks
        start = (datetime.now(timezone.utc) - timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
        with running_broker(settings):
            try:
                mem.phase = "stack"
                start_stream(settings)
                sent = _send(settings, events, start, seed)
                wait_for(lambda: _rows(settings, "silver.trip_events") >= sent, 1800, 5, "the first batch in silver")
                mem.phase = "with_trino"
                t0 = time.monotonic()
                start_trino(settings)
                trino_start_s = time.monotonic() - t0
                more = _send(settings, events, start + timedelta(days=3), seed + 1)
                for sql in QUERIES * 3:
                    run_sql(sql, engine="trino", settings=settings)
                wait_for(lambda: _rows(settings, "silver.trip_events") >= sent + more, 1800, 5,
                         "the second batch in silver")
                mem.sample()
            finally:
                stop_trino(settings)
                stop_stream(settings)
    report = mem.report()
    return {"events_per_phase": events, "trino_start_s": trino_start_s,
            "peak_without_trino_gib": report["peak_by_phase_gib"].get("stack"),
            "peak_with_trino_gib": report["peak_by_phase_gib"].get("with_trino"), "memory": report}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=300_000, help="events per phase")
    args = ap.parse_args(argv)
    runs = [run_once(args.events, seed=7 + i) for i in range(args.runs)]
    without = statistics.median(r["peak_without_trino_gib"] for r in runs)
    with_trino = statistics.median(r["peak_with_trino_gib"] for r in runs)
    print_table(f"stack peak RSS, median of {len(runs)} runs ({args.events:,} events per phase)", [
        ("broker + feature job", f"{without:.2f} GiB",
         f"{without / GOAL_WITHOUT_TRINO_GIB:.2f}x of the {GOAL_WITHOUT_TRINO_GIB:g} GiB goal"),
        ("broker + feature job + Trino", f"{with_trino:.2f} GiB",
         f"{with_trino / GOAL_WITH_TRINO_GIB:.2f}x of the {GOAL_WITH_TRINO_GIB:g} GiB goal"),
    ])
    write_result("stack_footprint", {
        "runs": runs, "median_peak_without_trino_gib": without, "median_peak_with_trino_gib": with_trino,
        "goals_gib": {"without_trino": GOAL_WITHOUT_TRINO_GIB, "with_trino": GOAL_WITH_TRINO_GIB},
        "meets_goals": without <= GOAL_WITHOUT_TRINO_GIB and with_trino <= GOAL_WITH_TRINO_GIB,
        "bytes_per_gib": GIB})
    return 0


if __name__ == "__main__":
    sys.exit(main())
