"""The Trino query suite on the real Trino 476 server vs the embedded engine (DuckDB + sqlglot), same lake.

    .venv/bin/python -m benchmarks.trino_vs_embedded --runs 5

Builds the suite's lake (tests/trino_suite.py: a seeded three-day generator written by pyiceberg in two
commits) in a temporary state dir, starts the embedded Trino over that catalog with ``start_trino`` (start-up
time = from the launcher's start until ``SELECT 1`` answers), then runs every query of the suite that both
engines accept ``--runs`` times on each engine, after one warm-up run each. The named baseline is the
embedded engine: each query's figure is Trino's median over the embedded median (ratio > 1: Trino slower).
Also reported: the whole suite's summed medians, and Trino's peak RSS (the JVM's process tree) while it
started and ran the suite. Queries run one at a time through ``run_sql``, as the CLI runs them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import psutil

from benchmarks.common import GIB, bench_settings, print_table, write_result


def _rss_tree(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
    except psutil.Error:
        return 0


def run(runs: int = 5, heap: str | None = None) -> dict[str, Any]:
    import threading

    from ridecast.sql import run_sql
    from ridecast.stack.trino import start_trino, stop_trino, trino_process
    from tests.trino_suite import SUITE, build_lake

    env = {"RIDECAST_TRINO__HEAP": heap} if heap else {}
    with bench_settings("trino", **env) as settings:
        lake = build_lake(settings)
        peak = {"rss": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rec = trino_process(settings).info()
                if rec:
                    peak["rss"] = max(peak["rss"], _rss_tree(rec["pid"]))
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        try:
            start_trino(settings)
            startup_s = time.perf_counter() - t0
            queries = [q for q in SUITE if q.embedded_rejects is None]
            per_query = []
            for q in queries:
                sql = lake.fill(q.sql)
                times: dict[str, list[float]] = {"trino": [], "embedded": []}
                for engine in times:
                    run_sql(sql, settings, engine=engine)  # warm-up: JIT, plan caches, extension loading
                    for _ in range(runs):
                        start = time.perf_counter()
                        run_sql(sql, settings, engine=engine)
                        times[engine].append(time.perf_counter() - start)
                med = {e: statistics.median(v) for e, v in times.items()}
                per_query.append({"query": q.name, "trino_median_s": round(med["trino"], 4),
                                  "embedded_median_s": round(med["embedded"], 4),
                                  "ratio_trino_over_embedded": round(med["trino"] / med["embedded"], 2)})
                print(f"  {q.name:28s} trino {med['trino'] * 1000:8.1f} ms  embedded {med['embedded'] * 1000:8.1f} ms",
                      flush=True)
        finally:
            stop_trino(settings)
            stop.set()
            sampler.join(timeout=2)
        heap_setting = settings.trino.heap
    trino_total = sum(r["trino_median_s"] for r in per_query)
    embedded_total = sum(r["embedded_median_s"] for r in per_query)
    ratios = [r["ratio_trino_over_embedded"] for r in per_query]
    return {
        "baseline": "embedded engine (DuckDB + sqlglot) on the same lake",
        "runs_per_query": runs,
        "queries": len(per_query),
        "suite_total_trino_s": round(trino_total, 3),
        "suite_total_embedded_s": round(embedded_total, 3),
        "suite_ratio_trino_over_embedded": round(trino_total / embedded_total, 2),
        "median_query_ratio": round(statistics.median(ratios), 2),
        "trino_faster_on": [r["query"] for r in per_query if r["ratio_trino_over_embedded"] < 1],
        "trino_startup_s": round(startup_s, 1),
        "trino_peak_rss_gib": round(peak["rss"] / GIB, 3),
        "trino_heap": heap_setting,
        "per_query": per_query,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query and engine (median reported)")
    ap.add_argument("--heap", default=None, help="Trino -Xmx (default: settings, 3G)")
    args = ap.parse_args()
    res = run(args.runs, args.heap)
    print_table("Trino vs embedded, query suite", [
        ("queries both engines run", str(res["queries"]), f"median of {res['runs_per_query']} runs each"),
        ("suite total, Trino", f"{res['suite_total_trino_s']:.2f} s",
         f"{res['suite_ratio_trino_over_embedded']}x embedded"),
        ("suite total, embedded", f"{res['suite_total_embedded_s']:.2f} s", "baseline"),
        ("median per-query ratio", f"{res['median_query_ratio']}x", "Trino / embedded"),
        ("Trino start-up", f"{res['trino_startup_s']} s", "launcher start -> SELECT 1"),
        ("Trino peak RSS", f"{res['trino_peak_rss_gib']} GiB", f"-Xmx{res['trino_heap']}"),
    ])
    write_result("trino_vs_embedded", res)


if __name__ == "__main__":
    main()
