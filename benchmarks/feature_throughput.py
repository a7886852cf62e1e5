"""Feature-job throughput on one Flink slot (parallelism 1): streaming from Kafka, and batch over a file.

    .venv/bin/python -m benchmarks.feature_throughput                  # 3M events (the documented run)
    .venv/bin/python -m benchmarks.feature_throughput --events 1000000 # quicker; JIT warm-up weighs more

Why 3M: on 2 cores the JVM spends its first ~10 s compiling Flink's generated code (C2 JIT threads take the
second core), so a 1M-event run (~25 s of processing) measures much of that warm-up; the steady and warm rates
below show how much.

What it does, in a throw-away state dir:

1. simulates N trip events (``ridecast.sources.simulate``, a few days ending ~2 days ago, so every event passes the
   job's age/future checks) into a JSONL file, plus one closing heartbeat that flushes the last windows;
2. prefills the events topic (1 partition) with them, by default with a bounded PyFlink job whose Java
   producer is ~5x faster than kafka-python (``--prefill python`` uses ``ridecast.sources.producer`` instead);
3. reads the topic once with the job's own Kafka source into a blackhole (``benchmarks.flink_source_ceiling``):
   the ceiling this broker and one slot allow before any of the job's work;
4. starts the real streaming feature job (``ridecast.stack.pipeline.start_stream``) with
   ``startup_mode=earliest-offset`` and waits until Iceberg's Flink sink has committed every message to bronze;
5. measures the rate from the job's own per-record processing timestamps: bronze's ``received_at`` is
   ``CURRENT_TIMESTAMP``, which Flink evaluates per record in streaming mode, so
   ``events/s = messages / (last received_at - first received_at)`` nets out JVM start, planning and
   deployment exactly (they are reported separately, from Flink's log);
6. runs the same SQL in batch mode over the same file (``ridecast.stack.pipeline.backfill``) and times its
   tasks from Flink's log (first task RUNNING -> job FINISHED; the sink's Iceberg commits are inside the job).

Baselines, in the output: the source ceiling of step 3, the Nexmark q5 sliding-window figure (~22,000 events/s
per core, the reference the project's issue names), the goal (>= 50,000 events/s per slot) and the batch run of
this same job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from benchmarks.common import (
    RESULTS_DIR,
    SOURCE_RUNNING,
    MemorySampler,
    bench_settings,
    flink_log_events,
    fmt_rate,
    fmt_s,
    print_table,
    process_log_tail,
    running_broker,
    write_result,
)
from ridecast.config import Settings, repo_root

NEXMARK_Q5_PER_CORE = 22_000.0  # events/s per core, Nexmark q5 (HOP window, hot items) - the reference
GOAL_PER_SLOT = 50_000.0


# --------------------------------------------------------------------------- data
def write_events(path: Path, n: int, settings: Settings, seed: int = 7) -> dict[str, Any]:
    """N simulated events (event-time order) + one closing heartbeat, as JSONL. Returns counts and times."""
    from ridecast.events import HEARTBEAT, load_zones, make_event
    from ridecast.sources.deliver import write_jsonl
    from ridecast.sources.producer import default_close_after
    from ridecast.sources.simulate import simulate_events

    scale = max(1.0, n / 200_000)  # ~100k events per simulated day at scale 1
    days = 4
    start = (datetime.now(timezone.utc) - timedelta(days=days + 2)).replace(tzinfo=None, hour=0, minute=0,
                                                                            second=0, microsecond=0)
    meta: dict[str, Any] = {"events": 0, "first_ms": None, "last_ms": None, "scale": scale}
    close_ms = int(default_close_after(settings).total_seconds() * 1000) + 1000
    zone0 = load_zones(settings.zones_file)[0].zone

    def gen() -> Iterator[dict[str, Any]]:
        for e in simulate_events(start, timedelta(days=days), seed=seed, scale=scale):
            if meta["events"] >= n:
                break
            meta["events"] += 1
            meta["first_ms"] = meta["first_ms"] or e["event_time_ms"]
            meta["last_ms"] = e["event_time_ms"]
            yield e
        yield make_event("hb-bench-close", meta["last_ms"] + close_ms, HEARTBEAT, zone0)

    t0 = time.monotonic()
    lines = write_jsonl(gen(), path)
    meta.update(lines=lines, seconds=time.monotonic() - t0, bytes=path.stat().st_size)
    if meta["events"] < n:
        print(f"note: the simulation yielded only {meta['events']} events (asked {n})")
    return meta


def prefill(settings: Settings, servers: str, jsonl: Path, method: str) -> dict[str, Any]:
    """Put every line of ``jsonl`` on the events topic; returns the messages on it and the time taken."""
    from ridecast.stack.pipeline import job_jars

    t0 = time.monotonic()
    if method == "flink":
        spec = {"input_path": str(jsonl), "bootstrap_servers": servers, "topic": settings.kafka.events_topic,
                "jars": [str(j) for j in job_jars(settings)]}  # the job's own: Flink's Kafka SQL connector
        spec_path = settings.run_dir / "prefill.spec.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(spec))
        log_path = settings.log_dir / "prefill.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(repo_root()), "PYTHONUNBUFFERED": "1",
               "FLINK_LOG_DIR": str(settings.log_dir / "flink-prefill")}
        with log_path.open("wb") as log:
            proc = subprocess.run([str(settings.flink_python), "-m", "benchmarks.flink_prefill", str(spec_path)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=repo_root(), timeout=1800)
        if proc.returncode != 0 or "RIDECAST_PREFILL_DONE" not in log_path.read_text(errors="replace"):
            raise RuntimeError(f"prefill job failed (exit {proc.returncode}):\n{process_log_tail(log_path)}")
        with jsonl.open("rb") as fh:
            messages = sum(1 for _ in fh)
        extra = 0
    else:
        from ridecast.sources.producer import produce

        def events() -> Iterator[dict[str, Any]]:
            with jsonl.open() as fh:
                for line in fh:
                    yield json.loads(line)

        stats = produce(events(), settings, heartbeat_every_s=1e12, close_after=timedelta(0), progress=False)
        messages = stats.sent + stats.heartbeats
        extra = stats.heartbeats
    seconds = time.monotonic() - t0
    return {"method": method, "messages": messages, "producer_heartbeats": extra, "seconds": seconds,
            "rate": messages / seconds}


# --------------------------------------------------------------------------- ceiling: the broker alone
def run_broker_ceiling(settings: Settings, servers: str, messages: int) -> dict[str, Any]:
    """Kafka's own consumer benchmark (``kafka-consumer-perf-test``'s class, from the broker's jars) over the same
    topic: how fast this broker serves the records to one Java consumer, before Flink does anything."""
    from ridecast.stack.broker import kafka_lib_dir

    cmd = ["java", "-Xmx512m", "-cp", f"{kafka_lib_dir()}/*", "org.apache.kafka.tools.ConsumerPerformance",
           "--bootstrap-server", servers, "--topic", settings.kafka.events_topic, "--num-records", str(messages),
           "--timeout", "120000"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if done.returncode != 0 or header is None or header + 1 >= len(lines):
        raise RuntimeError(f"ConsumerPerformance failed (exit {done.returncode}): {done.stderr[-1500:]}")
    row = dict(zip((c.strip() for c in lines[header].split(",")), (v.strip() for v in lines[header + 1].split(","))))
    return {"messages": int(row["data.consumed.in.nMsg"]), "events_per_s": float(row["fetch.nMsg.sec"]),
            "events_per_s_incl_group_join": float(row["nMsg.sec"]), "mb_per_s": float(row["fetch.MB.sec"]),
            "tool": "org.apache.kafka.tools.ConsumerPerformance (fetch.nMsg.sec: net of the group join)"}


# --------------------------------------------------------------------------- ceiling: the source alone
def run_ceiling(settings: Settings, messages: int) -> dict[str, Any]:
    """The job's own Kafka source into a blackhole, bounded: what one slot can read from this broker at all."""
    import dataclasses

    from ridecast.stack.pipeline import _flink_env, job_spec

    spec = job_spec(settings, "stream")
    spec_path = settings.run_dir / "ceiling.spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(dataclasses.asdict(spec)))
    log_path = settings.log_dir / "ceiling.log"
    t0 = time.time()
    with log_path.open("wb") as log:
        proc = subprocess.run([str(settings.flink_python), "-m", "benchmarks.flink_source_ceiling", str(spec_path)],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **_flink_env(settings)},
                              cwd=repo_root(), timeout=1800)
    if proc.returncode != 0 or "RIDECAST_CEILING_DONE" not in log_path.read_text(errors="replace"):
        raise RuntimeError(f"ceiling job failed (exit {proc.returncode}):\n{process_log_tail(log_path)}")
    running = flink_log_events(settings, SOURCE_RUNNING, t0)
    finished = flink_log_events(settings, r"Job ridecast-bench-source-ceiling .*to FINISHED", t0)
    processing = (finished[-1][0] - running[0][0]) if running and finished else None
    return {"messages": messages, "processing_s": processing,
            "events_per_s": (messages / processing) if processing else None,
            "note": "bounded at the topic's latest offset, which Apache Kafka reports exactly: every message is read"}


# --------------------------------------------------------------------------- streaming run
def _bronze_rows(settings: Settings) -> int:
    """Rows committed to bronze so far: the current snapshot's ``total-records`` (no data file is read)."""
    from iceberg_catalog.catalog import open_catalog

    snap = open_catalog(settings).load_table("bronze.trip_events").current_snapshot()
    return int(snap.summary.additional_properties.get("total-records", 0)) if snap and snap.summary else 0


def _jvm_cpu(settings: Settings) -> float | None:
    """CPU seconds (user+system) of the feature job's process tree (driver + JVM)."""
    import psutil

    from ridecast.stack.pipeline import feature_job_process

    rec = feature_job_process(settings).info()
    if rec is None:
        return None
    total = 0.0
    try:
        root = psutil.Process(rec["pid"])
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
    except psutil.Error:
        return None
    return total


def _received_at_ms(settings: Settings) -> tuple[list[int], int]:
    """bronze's ``received_at`` in ms for every committed row, and the number of data files holding them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from iceberg_catalog.catalog import open_catalog

    table = open_catalog(settings).load_table("bronze.trip_events")
    scan = table.scan(selected_fields=("received_at",))
    files = sum(1 for _ in scan.plan_files())
    ts = scan.to_arrow().column("received_at")
    return pc.cast(pc.cast(ts, pa.timestamp("ms", tz="UTC")), pa.int64()).to_pylist(), files


def run_stream(settings: Settings, expected: int, timeout_s: float) -> dict[str, Any]:
    from ridecast.stack.pipeline import feature_job_process, start_stream, stop_stream

    cpu_samples: list[tuple[float, float]] = []  # (epoch s, JVM tree CPU s)
    launched = time.time()
    start_stream(settings)
    proc = feature_job_process(settings)
    done_at = None
    try:
        deadline = time.monotonic() + timeout_s
        last_print = 0.0
        while time.monotonic() < deadline:
            if proc.info() is None:
                raise RuntimeError(f"feature job exited early:\n{process_log_tail(proc.log_file)}")
            if (cpu := _jvm_cpu(settings)) is not None:
                cpu_samples.append((time.time(), cpu))
            n = _bronze_rows(settings)
            if time.monotonic() - last_print > 15:
                print(f"  stream: {n:,}/{expected:,} messages committed to bronze "
                      f"({time.time() - launched:.0f}s since launch)", flush=True)
                last_print = time.monotonic()
            if n >= expected:
                done_at = time.time()
                break
            time.sleep(1.0)
        else:
            raise TimeoutError(f"only {_bronze_rows(settings):,}/{expected:,} messages committed after "
                               f"{timeout_s:.0f}s")
    finally:
        stop_stream(settings)

    rec_ms, files = _received_at_ms(settings)
    rec_ms.sort()
    n = len(rec_ms)
    first, last = rec_ms[0] / 1000.0, rec_ms[-1] / 1000.0
    net = n / max(last - first, 1e-3)
    i5, i95 = int(0.05 * (n - 1)), int(0.95 * (n - 1))
    steady = (i95 - i5) / max((rec_ms[i95] - rec_ms[i5]) / 1000.0, 1e-3)
    # warm: the second half of the records, after the JIT has compiled Flink's generated code (the first
    # tens of seconds of a job spend much of the 2 cores in the C2 compiler)
    i50 = int(0.50 * (n - 1))
    warm = (i95 - i50) / max((rec_ms[i95] - rec_ms[i50]) / 1000.0, 1e-3)
    per_second: dict[int, int] = {}
    for ms in rec_ms:
        per_second[ms // 1000] = per_second.get(ms // 1000, 0) + 1

    def cpu_at(t: float) -> float | None:
        best = min(cpu_samples, key=lambda s: abs(s[0] - t), default=None)
        return best[1] if best else None

    c0, c1 = cpu_at(first), cpu_at(last)
    cpu_s = (c1 - c0) if c0 is not None and c1 is not None and c1 > c0 else None
    job_running = flink_log_events(settings, r"Job ridecast-zone-features-stream .*to RUNNING", launched)
    src_running = flink_log_events(settings, SOURCE_RUNNING,
                                   launched)
    return {
        "messages": n,
        "expected": expected,
        "launched_epoch": launched,
        "job_running_after_s": (job_running[0][0] - launched) if job_running else None,
        "source_running_after_s": (src_running[0][0] - launched) if src_running else None,
        "first_record_after_s": first - launched,
        "last_record_after_s": last - launched,
        "all_committed_after_s": (done_at - launched) if done_at else None,
        "processing_s": last - first,
        "events_per_s_net": net,
        "events_per_s_steady_p5_p95": steady,
        "events_per_s_warm_p50_p95": warm,
        "events_per_s_best_second": max(per_second.values()),
        "events_per_s_incl_startup": n / (last - launched),
        "jvm_cpu_s_during_processing": cpu_s,
        "jvm_cores_used": (cpu_s / (last - first)) if cpu_s else None,
        "events_per_cpu_s": (n / cpu_s) if cpu_s else None,
        "bronze_files": files,
    }


# --------------------------------------------------------------------------- batch run
def run_batch(settings: Settings, jsonl: Path, lines: int) -> dict[str, Any]:
    from ridecast.stack.pipeline import backfill

    t0 = time.time()
    res = backfill(jsonl, settings)
    total = time.time() - t0
    running = flink_log_events(settings, r"switched from INITIALIZING to RUNNING", t0)
    finished = flink_log_events(settings, r"Job ridecast-zone-features-batch .*to FINISHED", t0)
    first_task = running[0][0] if running else None
    job_end = finished[-1][0] if finished else None
    processing = (job_end - first_task) if first_task and job_end else None
    return {
        "lines": lines,
        "total_s_incl_startup_and_commit": total,
        "first_task_running_after_s": (first_task - t0) if first_task else None,
        "processing_s (incl. the sink's Iceberg commits)": processing,
        "events_per_s_net": (lines / processing) if processing else None,
        "events_per_s_incl_startup_and_commit": lines / total,
        "committed_rows": res.committed,
    }


def _committer_baseline(rate: float, bat: dict[str, Any] | None) -> dict[str, Any]:
    """The last run with the file sinks + Python committer (``results/feature_throughput_committer.json``,
    recorded before they retired) as a named baseline: this run's rates as ratios of it."""
    path = RESULTS_DIR / "feature_throughput_committer.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    out: dict[str, Any] = {"committer_run": {"file": path.name, "events": old["settings"]["events"],
                                             "stream_events_per_s_net": old["stream"]["events_per_s_net"],
                                             "batch_events_per_s_net": (old.get("batch") or {}).get("events_per_s_net"),
                                             "loadavg_at_end": old["machine"]["loadavg_at_end"]}}
    out["stream_vs_committer_run"] = rate / old["stream"]["events_per_s_net"]
    if bat and bat["events_per_s_net"] and out["committer_run"]["batch_events_per_s_net"]:
        out["batch_vs_committer_run"] = bat["events_per_s_net"] / out["committer_run"]["batch_events_per_s_net"]
    return out


# --------------------------------------------------------------------------- main
def run(events: int = 3_000_000, prefill_method: str = "flink", batch: bool = True, keep: bool = False,
        timeout_s: float | None = None) -> dict[str, Any]:
    env = {"RIDECAST_FLINK__STARTUP_MODE": "earliest-offset", "RIDECAST_FLINK__PARALLELISM": "1"}
    with bench_settings("throughput", keep=keep, **env) as settings, MemorySampler(settings) as mem:
        print(f"[throughput] state dir {settings.state_dir}; simulating {events:,} events", flush=True)
        jsonl = settings.state_dir / "events.jsonl"
        data = write_events(jsonl, events, settings)
        print(f"[throughput] wrote {data['lines']:,} lines ({data['bytes'] / 1e6:.0f} MB) in {data['seconds']:.0f}s",
              flush=True)
        with running_broker(settings) as servers:
            mem.phase = "prefill"
            print(f"[throughput] prefilling topic {settings.kafka.events_topic} ({prefill_method})", flush=True)
            pre = prefill(settings, servers, jsonl, prefill_method)
            print(f"[throughput] prefill: {pre['messages']:,} messages in {pre['seconds']:.0f}s "
                  f"({pre['rate']:,.0f}/s incl. job start)", flush=True)
            mem.phase = "broker-ceiling"
            print("[throughput] broker ceiling: Kafka's ConsumerPerformance over the same topic", flush=True)
            broker_ceiling = run_broker_ceiling(settings, servers, pre["messages"])
            mem.phase = "ceiling"
            print("[throughput] ceiling: the job's Kafka source alone into a blackhole", flush=True)
            ceiling = run_ceiling(settings, pre["messages"])
            mem.phase = "stream"
            print("[throughput] streaming feature job, earliest-offset, parallelism 1", flush=True)
            stream = run_stream(settings, pre["messages"], timeout_s or max(600.0, pre["messages"] / 2000))
        if batch:
            mem.phase = "batch"
            print("[throughput] batch feature job (pipeline.backfill) over the same file", flush=True)
            bat = run_batch(settings, jsonl, data["lines"])
        else:
            bat = None
        mem.sample()
    memory = mem.report()

    rate = stream["events_per_s_net"]
    result = {
        "settings": {"events": events, "prefill": prefill_method, "parallelism": 1,
                     "window_minutes": settings.flink.window_minutes, "slide_minutes": settings.flink.slide_minutes,
                     "checkpoint_interval_s": settings.flink.checkpoint_interval_s},
        "data": data,
        "prefill": pre,
        "broker_ceiling": broker_ceiling,
        "ceiling": ceiling,
        "stream": stream,
        "batch": bat,
        "baselines": {
            "nexmark_q5_events_per_s_per_core": NEXMARK_Q5_PER_CORE,
            "goal_events_per_s_per_slot": GOAL_PER_SLOT,
            "stream_vs_nexmark_q5": rate / NEXMARK_Q5_PER_CORE,
            "stream_vs_goal": rate / GOAL_PER_SLOT,
            "stream_per_cpu_s_vs_nexmark_q5": (stream["events_per_cpu_s"] / NEXMARK_Q5_PER_CORE
                                               if stream["events_per_cpu_s"] else None),
            "stream_vs_batch": (rate / bat["events_per_s_net"]) if bat and bat["events_per_s_net"] else None,
            "stream_vs_source_ceiling": (rate / ceiling["events_per_s"]) if ceiling["events_per_s"] else None,
            "stream_vs_broker_ceiling": (rate / broker_ceiling["events_per_s"]
                                         if broker_ceiling["events_per_s"] else None),
            **_committer_baseline(rate, bat),
        },
        "memory": memory,
    }
    ceil = ceiling["events_per_s"]
    rows = [
        ("broker alone: Kafka ConsumerPerformance", fmt_rate(broker_ceiling["events_per_s"]),
         f"job/broker = {rate / broker_ceiling['events_per_s']:.2f}" if broker_ceiling["events_per_s"] else "n/a"),
        ("ceiling: Kafka source alone → blackhole", fmt_rate(ceil),
         f"job/ceiling = {rate / ceil:.2f}; ceiling {ceil / GOAL_PER_SLOT:.2f}x goal" if ceil else "n/a"),
        ("stream events/s per slot (net: first→last record)", fmt_rate(rate),
         f"{rate / NEXMARK_Q5_PER_CORE:.2f}x Nexmark q5 (22k/core); {rate / GOAL_PER_SLOT:.2f}x goal 50k"),
        ("stream events/s, steady (p5→p95 of records)", fmt_rate(stream["events_per_s_steady_p5_p95"]),
         f"{stream['events_per_s_steady_p5_p95'] / GOAL_PER_SLOT:.2f}x goal"),
        ("stream events/s, warm (p50→p95 of records)", fmt_rate(stream["events_per_s_warm_p50_p95"]),
         f"{stream['events_per_s_warm_p50_p95'] / GOAL_PER_SLOT:.2f}x goal"
         + (f"; {stream['events_per_s_warm_p50_p95'] / ceil:.2f}x ceiling" if ceil else "")),
        ("stream events per JVM CPU-second", fmt_rate(stream["events_per_cpu_s"]),
         (f"{stream['events_per_cpu_s'] / NEXMARK_Q5_PER_CORE:.2f}x Nexmark q5 per core; "
          f"JVM used {stream['jvm_cores_used']:.2f} cores") if stream["events_per_cpu_s"] else "n/a"),
        ("stream incl. JVM start (launch→last record)", fmt_rate(stream["events_per_s_incl_startup"]), ""),
        ("stream: launch → first record", fmt_s(stream["first_record_after_s"]),
         f"job RUNNING after {fmt_s(stream['job_running_after_s'])}"),
        ("stream: processing time", fmt_s(stream["processing_s"]), f"{stream['messages']:,} messages"),
    ]
    if bat:
        b = bat["events_per_s_net"]
        rows += [
            ("batch events/s (first task RUNNING→FINISHED)", fmt_rate(b),
             f"stream/batch = {rate / b:.2f}" if b else "n/a"),
            ("batch incl. JVM start and Iceberg commits", fmt_rate(bat["events_per_s_incl_startup_and_commit"]),
             f"backfill total {fmt_s(bat['total_s_incl_startup_and_commit'])}"),
        ]
    base = result["baselines"]
    if "stream_vs_committer_run" in base:
        old = base["committer_run"]
        rows.append(("stream net, file sinks + committer run", fmt_rate(old["stream_events_per_s_net"]),
                     f"now {base['stream_vs_committer_run']:.2f}x of it ({old['events']:,} events, "
                     f"load {old['loadavg_at_end'][0]:.1f} then)"))
    rows += [
        ("prefill rate (" + prefill_method + ")", fmt_rate(pre["rate"]), "incl. job start"),
        ("peak RSS, whole stack (sum over processes)", f"{memory['peak_rss_gib']:.2f} GiB",
         f"{memory['ratio_of_goal']:.2f}x of the 8 GiB goal ({'meets' if memory['meets_goal'] else 'MISSES'})"),
    ]
    print_table(f"feature-job throughput, {events:,} events, parallelism 1", rows)
    print("peak RSS by phase (GiB):", memory["peak_by_phase_gib"], "breakdown at peak:",
          memory["peak_breakdown_gib"])
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--prefill", choices=["flink", "python"], default="flink")
    ap.add_argument("--no-batch", action="store_true", help="skip the batch (backfill) reference run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir (logs, catalog, warehouse)")
    ap.add_argument("--runs", type=int, default=3, help="independent runs; the figure is their median")
    args = ap.parse_args(argv)
    runs = []
    for i in range(args.runs):
        print(f"[throughput] run {i + 1}/{args.runs}", flush=True)
        runs.append(run(args.events, args.prefill, not args.no_batch, args.keep))
    write_result("feature_throughput", summarize(runs))
    return 0


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over independent runs of each headline rate and ratio (not the best run), plus every run."""
    def med(get) -> float | None:
        values = [v for v in (get(r) for r in runs) if v is not None]
        return statistics.median(values) if values else None

    median = {
        "stream_events_per_s_net": med(lambda r: r["stream"]["events_per_s_net"]),
        "stream_events_per_s_warm_p50_p95": med(lambda r: r["stream"]["events_per_s_warm_p50_p95"]),
        "stream_events_per_cpu_s": med(lambda r: r["stream"]["events_per_cpu_s"]),
        "broker_ceiling_events_per_s": med(lambda r: r["broker_ceiling"]["events_per_s"]),
        "source_ceiling_events_per_s": med(lambda r: r["ceiling"]["events_per_s"]),
        "stream_vs_broker_ceiling": med(lambda r: r["baselines"]["stream_vs_broker_ceiling"]),
        "stream_vs_goal": med(lambda r: r["baselines"]["stream_vs_goal"]),
        "batch_events_per_s_net": med(lambda r: r["batch"]["events_per_s_net"] if r["batch"] else None),
        "peak_rss_gib": med(lambda r: r["memory"]["peak_rss_gib"]),
    }
    print_table(f"feature-job throughput: median of {len(runs)} runs", [
        (k, f"{v:,.2f}" if isinstance(v, float) else str(v), "") for k, v in median.items()])
    return {"runs": len(runs), "median": median, "goal_events_per_s_per_slot": GOAL_PER_SLOT,
            "meets_goal": bool(median["stream_events_per_s_net"]
                               and median["stream_events_per_s_net"] >= GOAL_PER_SLOT),
            "each_run": runs}


if __name__ == "__main__":
    sys.exit(main())
