"""Freshness: a window's end -> its feature row on the online topic, and -> visible in ``gold.zone_features``.

    RIDECAST_FLINK__SLIDE_MINUTES=1 RIDECAST_FLINK__WINDOW_MINUTES='[1,5]' RIDECAST_FLINK__WATERMARK_DELAY_S=5 \\
        .venv/bin/python -m benchmarks.freshness --duration 300

(those three settings are also this script's defaults, applied unless the variables are already set: the
production 5-minute slide would need an hour of streaming for a handful of windows.)

With the whole embedded stack up in a throw-away state dir (broker, streaming feature job writing Iceberg),
it produces a live stream paced in real time (event time = now, ``--rate`` events/s over all zones, a heartbeat
every second) for ``--duration`` seconds, and measures for every feature row of every window that closed:

* online: arrival time on the features topic (a kafka-python consumer; stops on an idle timeout once the producer
  is done, as the running job keeps emitting the last windows' rows) minus the row's ``window_end``;
* Iceberg: the timestamp of the snapshot that first contains the row (walking the table's snapshots in
  commit order) minus ``window_end``.

Goals (the project's issue): online p99 <= slide + watermark delay + 5 s; Iceberg p99 <= 60 s, and with
Iceberg's own Flink sink <= ``flink.checkpoint_interval_s`` + 10 s. What sets the Iceberg figure: the watermark
delay (a window fires only when the watermark passes its end), ``flink.checkpoint_interval_s`` (the sink
commits what was written up to a checkpoint once it completes), plus the commit itself (four tables, each by its
own committer). The baseline is the last run with the file sinks + Python committer it replaced
(``results/freshness_committer.json``, same settings, same VM).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Iterator

from benchmarks.common import (
    SOURCE_RUNNING,
    MemorySampler,
    bench_settings,
    flink_log_events,
    fmt_s,
    print_table,
    process_log_tail,
    running_broker,
    summary,
    wait_for,
    write_result,
)
from ridecast.config import Settings

ICEBERG_GOAL_S = 60.0
FRESHNESS_DEFAULTS = {
    "RIDECAST_FLINK__SLIDE_MINUTES": "1",
    "RIDECAST_FLINK__WINDOW_MINUTES": "[1,5]",
    "RIDECAST_FLINK__WATERMARK_DELAY_S": "5",
}


def live_events(rate: float, duration_s: float, zones: list[str], seed: int = 11) -> Iterator[dict[str, Any]]:
    """Events stamped with the wall clock as they are yielded, paced at ``rate`` per second."""
    from ridecast.events import make_event

    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    weights = [1.0 / (1 + i % 7) for i in range(len(zones))]  # some zones busier than others
    t0 = time.time()
    i = 0
    while True:
        target = t0 + i / rate
        if target - t0 >= duration_s:
            return
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        zone = rng.choices(zones, weights)[0]
        kind = rng.random()
        surge = round(rng.uniform(1.0, 2.0), 1)
        now_ms = int(time.time() * 1000)
        if kind < 0.55:
            e = make_event(f"live-{run}-{i}-req", now_ms, "requested", zone, dropoff_zone=rng.choice(zones),
                           surge=surge)
        elif kind < 0.9:
            e = make_event(f"live-{run}-{i}-done", now_ms, "completed", zone, dropoff_zone=rng.choice(zones),
                           fare=round(rng.uniform(8, 60), 2), wait_seconds=float(rng.randint(60, 900)), surge=surge)
        else:
            e = make_event(f"live-{run}-{i}-cxl", now_ms, "cancelled", zone, wait_seconds=float(rng.randint(60, 900)),
                           surge=surge)
        yield e
        i += 1


def _ms(value: Any) -> int:
    if isinstance(value, str):
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    return int(value.timestamp() * 1000)


class OnlineReader(threading.Thread):
    """Reads the features topic from the beginning; records the first arrival of each (zone, size, end)."""

    def __init__(self, servers: str, topic: str, idle_timeout_s: float) -> None:
        super().__init__(name="online-reader", daemon=True)
        self.servers, self.topic, self.idle_timeout_s = servers, topic, idle_timeout_s
        self.arrivals: dict[tuple[str, int, int], float] = {}
        self.computed: dict[tuple[str, int, int], int] = {}
        self.records = 0
        self.finish = threading.Event()  # set when the producer is done: stop after the idle timeout
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        try:
            consumer = KafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False, group_id=None,
                                     client_id="ridecast-bench-freshness")
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            last = time.monotonic()
            try:
                while not (self.finish.is_set() and time.monotonic() - last > self.idle_timeout_s):
                    batch = consumer.poll(timeout_ms=200)
                    now = time.time()
                    for recs in batch.values():
                        for r in recs:
                            row = json.loads(r.value)
                            key = (row["zone"], int(row["window_minutes"]), _ms(row["window_end"]))
                            self.records += 1
                            self.arrivals.setdefault(key, now)  # at-least-once sink: keep the first copy
                            if row.get("computed_at"):
                                self.computed.setdefault(key, _ms(row["computed_at"]))
                            last = time.monotonic()
            finally:
                consumer.close()
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def gold_visibility(settings: Settings) -> tuple[dict[tuple[str, int, int], int], int]:
    """First snapshot (commit timestamp, ms) containing each gold row key; and the number of snapshots."""
    from iceberg_catalog.catalog import load_table, open_catalog

    table = load_table(open_catalog(settings), "gold.zone_features")
    seen: dict[tuple[str, int, int], int] = {}
    snaps = sorted(table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
    for snap in snaps:
        t = table.scan(snapshot_id=snap.snapshot_id,
                       selected_fields=("zone", "window_minutes", "window_end")).to_arrow()
        for zone, size, end in zip(t.column("zone").to_pylist(), t.column("window_minutes").to_pylist(),
                                   t.column("window_end").to_pylist()):
            seen.setdefault((zone, int(size), _ms(end)), snap.timestamp_ms)
    return seen, len(snaps)


def _baseline() -> dict[str, Any]:
    """The committer-era run this one is compared with (recorded before the committer retired)."""
    from benchmarks.common import RESULTS_DIR

    path = RESULTS_DIR / "freshness_committer.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    return {"file": path.name, "iceberg_p50_s": old["iceberg_latency_s"]["p50"],
            "iceberg_p99_s": old["iceberg_latency_s"]["p99"], "online_p99_s": old["online_latency_s"]["p99"],
            "settings": old["settings"]}


def run(duration_s: float = 300.0, rate: float = 200.0, keep: bool = False, iceberg_wait_s: float = 180.0,
        online_idle_s: float = 20.0) -> dict[str, Any]:
    from ridecast.events import load_zones
    from ridecast.sources.producer import produce
    from ridecast.stack.pipeline import feature_job_process, start_stream, stop_stream

    env = {k: os.environ.get(k, v) for k, v in FRESHNESS_DEFAULTS.items()}
    with bench_settings("freshness", keep=keep, **env) as settings, MemorySampler(settings) as mem:
        f = settings.flink
        slide_s, delay_s = f.slide_minutes * 60, f.watermark_delay_s
        online_goal = slide_s + delay_s + 5
        sink_goal = f.checkpoint_interval_s + 10.0
        knobs = {"window_minutes": f.window_minutes, "slide_minutes": f.slide_minutes,
                 "watermark_delay_s": delay_s, "checkpoint_interval_s": f.checkpoint_interval_s,
                 "rate_events_per_s": rate, "duration_s": duration_s, "heartbeat_every_s": 1.0}
        print(f"[freshness] state dir {settings.state_dir}; settings {knobs}", flush=True)
        with running_broker(settings) as servers:
            try:
                mem.phase = "startup"
                t_launch = time.time()
                start_stream(settings)
                job = feature_job_process(settings)

                def source_running() -> bool:
                    if job.info() is None:
                        raise RuntimeError(f"feature job exited:\n{process_log_tail(job.log_file)}")
                    return bool(flink_log_events(settings, SOURCE_RUNNING, t_launch))

                wait_for(source_running, 300, 1.0, "the feature job's Kafka source to run")
                startup_s = time.time() - t_launch
                print(f"[freshness] job running after {startup_s:.0f}s; producing live for {duration_s:.0f}s "
                      f"at {rate:.0f} ev/s", flush=True)
                reader = OnlineReader(servers, settings.kafka.features_topic, online_idle_s)
                reader.start()
                mem.phase = "streaming"
                zones = [z.zone for z in load_zones(settings.zones_file)]
                stats = produce(live_events(rate, duration_s, zones), settings, heartbeat_every_s=1.0,
                                close_after=timedelta(0), progress=False)
                print(f"[freshness] produced {stats.sent:,} events ({stats.rate:.0f}/s), "
                      f"{stats.heartbeats:,} heartbeats", flush=True)
                reader.finish.set()
                reader.join(timeout=online_idle_s + 120)
                if reader.error:
                    raise reader.error
                closed_until = stats.last_event_ms - delay_s * 1000  # windows ending by then must have fired
                online = {k: v for k, v in reader.arrivals.items() if k[2] <= closed_until}
                print(f"[freshness] online: {len(online):,} feature rows of closed windows; waiting for Iceberg",
                      flush=True)
                mem.phase = "draining"

                def iceberg_caught_up() -> bool:
                    if job.info() is None:
                        raise RuntimeError(f"feature job exited:\n{process_log_tail(job.log_file)}")
                    vis, _ = gold_visibility(settings)
                    return all(k in vis for k in online)

                try:
                    wait_for(iceberg_caught_up, iceberg_wait_s, 3.0, "gold.zone_features to contain every window")
                except TimeoutError as exc:
                    print(f"[freshness] WARNING: {exc}", flush=True)
                mem.sample()
            finally:
                stop_stream(settings)
            visible, n_snapshots = gold_visibility(settings)

    baseline = _baseline()
    online_lat = [(t * 1000 - k[2]) / 1000.0 for k, t in online.items()]
    emit_lat = [(reader.computed[k] - k[2]) / 1000.0 for k in online if k in reader.computed]
    ice_keys = [k for k in online if k in visible]
    ice_lat = [(visible[k] - k[2]) / 1000.0 for k in ice_keys]
    missing = len(online) - len(ice_keys)
    on, ic, em = summary(online_lat), summary(ice_lat), summary(emit_lat)
    memory = mem.report()
    windows = sorted({(k[1], k[2]) for k in online})
    result = {
        "settings": knobs,
        "startup_s": startup_s,
        "produced": {"events": stats.sent, "heartbeats": stats.heartbeats, "rate": stats.rate},
        "online_rows": len(online),
        "online_records_read": reader.records,
        "distinct_windows": len(windows),
        "distinct_window_ends": len({w[1] for w in windows}),
        "online_latency_s": on,
        "flink_emit_latency_s (computed_at - window_end)": em,
        "iceberg_latency_s": ic,
        "iceberg_rows_missing_at_end": missing,
        "gold_snapshots": n_snapshots,
        "goals": {"online_p99_s": online_goal, "iceberg_p99_s": ICEBERG_GOAL_S,
                  "iceberg_sink_p99_s (checkpoint + 10 s)": sink_goal,
                  "online_meets": on["p99"] is not None and on["p99"] <= online_goal,
                  "iceberg_meets": ic["p99"] is not None and ic["p99"] <= ICEBERG_GOAL_S and missing == 0,
                  "iceberg_sink_meets": ic["p99"] is not None and ic["p99"] <= sink_goal and missing == 0},
        "baseline (file sinks + Python committer)": baseline,
        "iceberg_p99_vs_baseline": (ic["p99"] / baseline["iceberg_p99_s"]
                                    if ic["p99"] is not None and baseline else None),
        "memory": memory,
    }

    def ok(x: float | None, goal: float) -> str:
        return "n/a" if x is None else f"{x / goal:.2f}x goal {goal:.0f} s ({'meets' if x <= goal else 'MISSES'})"

    rows = [
        ("online p50 (window_end → row on topic)", fmt_s(on["p50"]), ""),
        ("online p99", fmt_s(on["p99"]), ok(on["p99"], online_goal) + f" = slide {slide_s}+delay {delay_s}+5"),
        ("  of which Flink emit p99 (computed_at)", fmt_s(em["p99"]), ""),
        ("Iceberg p50 (window_end → snapshot with row)", fmt_s(ic["p50"]), ""),
        ("Iceberg p99", fmt_s(ic["p99"]), ok(ic["p99"], ICEBERG_GOAL_S)),
        ("Iceberg p99 vs the sink goal", fmt_s(ic["p99"]), ok(ic["p99"], sink_goal)
         + f" = checkpoint {f.checkpoint_interval_s}+10"),
        ("Iceberg p99, baseline (file sinks + committer)", fmt_s(baseline.get("iceberg_p99_s")),
         f"now {result['iceberg_p99_vs_baseline']:.2f}x of it" if result["iceberg_p99_vs_baseline"] else "n/a"),
        ("rows measured (online / Iceberg)", f"{len(online):,} / {len(ice_lat):,}",
         f"{len(windows)} windows, {len({w[1] for w in windows})} window ends; {missing} rows not in Iceberg"),
        ("peak RSS, whole stack (sum over processes)", f"{memory['peak_rss_gib']:.2f} GiB",
         f"{memory['ratio_of_goal']:.2f}x of the 8 GiB goal ({'meets' if memory['meets_goal'] else 'MISSES'})"),
    ]
    print_table(f"freshness: slide {f.slide_minutes} min, windows {f.window_minutes} min, watermark delay {delay_s} s, "
                f"checkpoint {f.checkpoint_interval_s} s (Iceberg's Flink sink)", rows)
    print("Iceberg freshness is set by: watermark delay + flink.checkpoint_interval_s (the sink commits at each"
          " completed checkpoint) + commit time.")
    print("peak RSS by phase (GiB):", memory["peak_by_phase_gib"], "breakdown at peak:", memory["peak_breakdown_gib"])
    write_result("freshness", result)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of live streaming")
    ap.add_argument("--rate", type=float, default=200.0, help="events per second")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir")
    args = ap.parse_args(argv)
    run(args.duration, args.rate, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
