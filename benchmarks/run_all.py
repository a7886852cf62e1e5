"""``make bench``: every benchmark with modest defaults, then one summary table.

    .venv/bin/python -m benchmarks.run_all                       # modest defaults (~10-15 min on 2 cores)
    .venv/bin/python -m benchmarks.run_all --events 3000000 --duration 300   # the issue's full sizes

Results land in ``benchmarks/results/<name>.json``; the figures measured so far are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from benchmarks.common import GIB, fmt_rate, fmt_s, print_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="throughput: events in the topic")
    ap.add_argument("--duration", type=float, default=180.0, help="freshness: seconds of live streaming")
    ap.add_argument("--rate", type=float, default=200.0, help="freshness: events per second")
    ap.add_argument("--sql-cost-events", type=int, default=50_000)
    ap.add_argument("--only", choices=["throughput", "freshness", "sql_cost"], action="append")
    args = ap.parse_args(argv)
    wanted = args.only or ["throughput", "sql_cost", "freshness"]

    results: dict[str, dict] = {}
    failed: list[str] = []
    for name in wanted:  # one at a time: on 2 cores they would measure each other
        print(f"\n=== {name} ===", flush=True)
        try:
            if name == "throughput":
                from benchmarks.feature_throughput import run as run_throughput

                results[name] = run_throughput(args.events)
            elif name == "sql_cost":
                from benchmarks.sql_cost import run as run_sql_cost

                results[name] = run_sql_cost(args.sql_cost_events)
            else:
                from benchmarks.freshness import run as run_freshness

                results[name] = run_freshness(args.duration, args.rate)
        except Exception:
            traceback.print_exc()
            failed.append(name)

    rows: list[tuple[str, str, str]] = []
    if t := results.get("throughput"):
        b = t["baselines"]
        rows.append(("stream events/s per slot", fmt_rate(t["stream"]["events_per_s_net"]),
                     f"{b['stream_vs_nexmark_q5']:.2f}x Nexmark q5 22k/core, {b['stream_vs_goal']:.2f}x goal 50k"))
        if t["batch"]:
            rows.append(("batch events/s per slot", fmt_rate(t["batch"]["events_per_s_net"]),
                         f"stream/batch {b['stream_vs_batch']:.2f}" if b["stream_vs_batch"] else ""))
        rows.append(("throughput peak RSS", f"{t['memory']['peak_rss_bytes'] / GIB:.2f} GiB", "goal 8 GiB"))
    if c := results.get("sql_cost"):
        for v in c["variants"]:
            rows.append((f"sql_cost: {v['variant']}", fmt_rate(v["events_per_cpu_s"]) + "/cpu-s",
                         f"{v['ratio_vs_json_hop_cpu']:.3f}x json+HOP" if v.get("ratio_vs_json_hop_cpu") else ""))
    if f := results.get("freshness"):
        g = f["goals"]
        rows.append(("online freshness p50 / p99", f"{fmt_s(f['online_latency_s']['p50'])} / "
                     f"{fmt_s(f['online_latency_s']['p99'])}", f"goal p99 <= {g['online_p99_s']} s"))
        rows.append(("Iceberg freshness p50 / p99", f"{fmt_s(f['iceberg_latency_s']['p50'])} / "
                     f"{fmt_s(f['iceberg_latency_s']['p99'])}", f"goal p99 <= {g['iceberg_p99_s']:.0f} s"))
        rows.append(("freshness peak RSS (whole stack)", f"{f['memory']['peak_rss_bytes'] / GIB:.2f} GiB",
                     "goal 8 GiB"))
    if rows:
        print_table("ridecast benchmarks: summary", rows)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
