"""Why the feature job is as fast as it is: the cost of each part of its SQL, same events, same JVM, batch mode.

    .venv/bin/python -m benchmarks.sql_cost --events 50000

Runs :mod:`benchmarks.flink_sql_cost` under .venv-flink over a simulated JSONL file (the same generator as
``feature_throughput``), with blackhole sinks, so file and Kafka sinks are out of the picture. The named
baseline is the first variant that does the job's windowing work: the ``json`` format (one parse per
event) + the job's HOP windows, i.e. what a Nexmark-q5-like query costs here. Each other variant is reported
as a ratio to it, in events per JVM CPU-second (robust to other jobs on the machine) and per wall second, and
as marginal CPU ms per event above the "scan" floor (which carries the per-job fixed cost).
The job's variants run as the driver runs them: StreamTableEnvironment in BATCH runtime mode, with the same
shared tables that hold the parse + validation (``JobStatements.shared``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import MemorySampler, bench_settings, fmt_rate, print_table, process_log_tail, write_result
from benchmarks.feature_throughput import GOAL_PER_SLOT, NEXMARK_Q5_PER_CORE, write_events
from ridecast.config import repo_root


def run(events: int = 50_000, keep: bool = False) -> dict[str, Any]:
    from iceberg_catalog.catalog import ensure_tables, open_catalog
    from ridecast.stack.pipeline import _flink_env, job_spec

    with bench_settings("sqlcost", keep=keep) as settings, MemorySampler(settings) as mem:
        jsonl = settings.state_dir / "events.jsonl"
        data = write_events(jsonl, events, settings)
        ensure_tables(open_catalog(settings))  # the "job" variant writes the lake through Iceberg's Flink sink
        spec = job_spec(settings, "batch", input_path=str(jsonl), source_name=jsonl.name,
                        now_ms=int(time.time() * 1000))
        spec_path = settings.run_dir / "sql_cost.spec.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(dataclasses.asdict(spec)))
        out = settings.state_dir / "sql_cost.out.json"
        log = settings.log_dir / "sql_cost.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **_flink_env(settings)}
        print(f"[sql_cost] {data['lines']:,} lines; running the variants in one JVM", flush=True)
        with log.open("wb") as fh:
            proc = subprocess.run([str(settings.flink_python), "-m", "benchmarks.flink_sql_cost", str(spec_path),
                                   str(out)], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=repo_root(),
                                  timeout=3600)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"sql_cost job failed (exit {proc.returncode}):\n{process_log_tail(log)}")
        res = json.loads(out.read_text())
    variants = res["variants"]
    base = next(v for v in variants if v["id"] == res["baseline"])
    scan = next((v for v in variants if v["id"] == "scan"), None)
    rows = []
    for v in variants:
        r_cpu = v["events_per_cpu_s"] / base["events_per_cpu_s"] if v["events_per_cpu_s"] else None
        v["ratio_vs_json_hop_cpu"] = r_cpu
        # marginal CPU per event above the scan floor (per-job code generation, deployment, raw I/O)
        v["marginal_cpu_ms_per_event"] = (1000 * (v["jvm_cpu_s"] - scan["jvm_cpu_s"]) / res["lines"]
                                          if scan and v is not scan else None)
        marg = f"; {v['marginal_cpu_ms_per_event']:.3f} ms/event above scan" \
            if v["marginal_cpu_ms_per_event"] is not None else ""
        rows.append((v["variant"], fmt_rate(v["events_per_cpu_s"]) + " /cpu-s",
                     f"{r_cpu:.3f}x json+HOP baseline; wall {fmt_rate(v['events_per_s'])}{marg}" if r_cpu else "n/a"))
    print_table(f"feature-job SQL cost breakdown, {res['lines']:,} events, batch (StreamTableEnvironment, BATCH "
                "runtime mode, the job's shared view), parallelism 1, blackhole sinks", rows)
    result = {"events": events, "lines": res["lines"], "baseline_variant": base["variant"], "variants": variants,
              "reference": {"nexmark_q5_events_per_s_per_core": NEXMARK_Q5_PER_CORE,
                            "goal_events_per_s_per_slot": GOAL_PER_SLOT},
              "memory": mem.report()}
    write_result("sql_cost", result)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    run(args.events, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
