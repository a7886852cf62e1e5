"""Memory of the online-feature feed (``python -m serve --feed``, the chart's feed Deployment) against the chart's
request and limit for it.

    .venv/bin/python -m benchmarks.feed_footprint                  # 3 runs, a 29-day lake of 55 zones
    .venv/bin/python -m benchmarks.feed_footprint --runs 1 --days 8

Set-up (once): a throw-away state dir, the embedded Apache Kafka broker, a real ``redis-server``, and a lake of
``--days`` simulated days (``tests.lake_fixtures.write_lake``). Each run clears Redis, starts the feed as the chart
does (only ``RIDECAST_*`` settings, the Redis backend, committed offsets), samples its RSS every 0.1 s while it
bootstraps Redis from ``gold.zone_features`` and for ``--follow-s`` of following the topic after that, then stops it
with SIGTERM. Reported: peak RSS, the RSS once it follows the topic, the windows bootstrapped, and the median over
runs; named baselines: the chart's ``serving.feed.resources`` request and limit (``charts/ridecast/values.yaml``),
as ratios. What grows with the lake is the bootstrap (one scan of the history span, ``serve._rows.history_span_ms``),
so the figure per bootstrapped window is there to size other lakes.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import yaml

from benchmarks.common import GIB, bench_settings, print_table, running_broker, write_result
from ridecast.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def _quantity_bytes(q: str) -> int:
    """A Kubernetes memory quantity of the chart's values (``Mi``/``Gi``) in bytes."""
    for suffix, unit in (("Gi", GIB), ("Mi", MIB)):
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * unit)
    raise ValueError(f"unexpected memory quantity {q!r} in values.yaml")


def chart_memory() -> dict[str, int]:
    res = yaml.safe_load((ROOT / "charts" / "ridecast" / "values.yaml").read_text())["serving"]["feed"]["resources"]
    return {"request": _quantity_bytes(res["requests"]["memory"]), "limit": _quantity_bytes(res["limits"]["memory"])}


def _feed_env(s: Settings) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("RIDECAST_")}
    return keep | {
        "RIDECAST_CONFIG": str(s.home / "no-ridecast.toml"),
        "RIDECAST_HOME": str(s.home),
        "RIDECAST_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers or "",
        "RIDECAST_SERVING__BACKEND": "redis",
        "RIDECAST_SERVING__REDIS_URL": s.serving.redis_url or "",
    }


def one_run(s: Settings, lake_end_ms: int, follow_s: float) -> dict[str, Any]:
    from serve import get_store

    store = get_store(s)
    store.clear()
    log = s.home / "feed.log"
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "serve", "--feed"], env=_feed_env(s), stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT)
    ps = psutil.Process(proc.pid)
    peak, bootstrapped_s, following = 0, None, []
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the feed exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            rss = ps.memory_info().rss
            peak = max(peak, rss)
            now = time.monotonic() - t0
            if bootstrapped_s is None and store.bounds()[1] == lake_end_ms:
                bootstrapped_s = now
            if bootstrapped_s is not None:
                following.append(rss)
                if now - bootstrapped_s >= follow_s:
                    break
            if now > 600:
                raise SystemExit(f"no bootstrap after 600 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        store.close()
    said = log.read_text()
    windows = next((int(line.split("bootstrapped ")[1].split()[0]) for line in said.splitlines()
                    if "bootstrapped " in line and " windows" in line), None)
    return {"peak_bytes": peak, "following_bytes": following[-1], "bootstrap_s": bootstrapped_s,
            "windows": windows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--days", type=int, default=29, help="simulated days in the lake (serving reads 4 weeks + 1 day)")
    ap.add_argument("--follow-s", type=float, default=15.0, help="seconds of following the topic after the bootstrap")
    args = ap.parse_args()

    from ridecast.sources.simulate import simulate_events
    from tests.lake_fixtures import write_lake
    from tests.redis_server import RedisServer

    redis = RedisServer()
    redis.start()
    try:
        with bench_settings("feed", RIDECAST_SERVING__BACKEND="redis", RIDECAST_SERVING__REDIS_URL=redis.url) as s:
            with running_broker(s) as servers:
                s.kafka.bootstrap_servers = servers
                end = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
                t = time.perf_counter()
                _silver, gold = write_lake(s, list(simulate_events(end - timedelta(days=args.days),
                                                                   timedelta(days=args.days), seed=3)))
                lake_s = time.perf_counter() - t
                lake_end_ms = int(gold["window_end"].max().timestamp() * 1000)
                runs = []
                for i in range(args.runs):
                    runs.append(one_run(s, lake_end_ms, args.follow_s))
                    r = runs[-1]
                    print(f"run {i + 1}: peak {r['peak_bytes'] / MIB:.0f} MiB, following "
                          f"{r['following_bytes'] / MIB:.0f} MiB, {r['windows']} windows in {r['bootstrap_s']:.1f} s",
                          flush=True)
    finally:
        redis.stop()

    chart = chart_memory()
    med = {k: statistics.median(r[k] for r in runs) for k in ("peak_bytes", "following_bytes", "bootstrap_s")}
    windows = runs[0]["windows"]
    # what the bootstrap adds over the process that only follows the topic, to size a larger lake from this one
    per_window = (med["peak_bytes"] - med["following_bytes"]) / windows if windows else None
    print_table(
        f"online-feature feed, {args.days}-day lake, {gold['zone'].nunique()} zones (median of {args.runs})",
        [
            ("peak RSS (bootstrap)", f"{med['peak_bytes'] / MIB:.0f} MiB",
             f"{med['peak_bytes'] / chart['request']:.2f}x the chart's request, "
             f"{med['peak_bytes'] / chart['limit']:.2f}x its limit"),
            ("RSS while following", f"{med['following_bytes'] / MIB:.0f} MiB",
             f"{med['following_bytes'] / chart['request']:.2f}x the request"),
            ("windows bootstrapped", f"{windows}",
             f"{per_window:.0f} bytes per window above the following RSS" if per_window else "-"),
            ("bootstrap time", f"{med['bootstrap_s']:.1f} s", "start to the lake's newest window in Redis"),
        ],
    )
    path = write_result("feed_footprint", {
        "days": args.days, "zones": int(gold["zone"].nunique()), "lake_s": lake_s, "runs": runs,
        "median": med, "windows": windows, "bootstrap_bytes_per_window": per_window, "chart_bytes": chart,
        "ratios": {"peak_vs_request": med["peak_bytes"] / chart["request"],
                   "peak_vs_limit": med["peak_bytes"] / chart["limit"]},
    })
    print(f"results: {path}")


if __name__ == "__main__":
    main()
