"""Online forecasting latency and throughput: Ray Serve vs a plain single-process uvicorn app, same run.

    .venv/bin/python -m benchmarks.serve_latency --runs 3            # latency/throughput table (h2load)
    .venv/bin/python -m benchmarks.serve_latency --autoscaling        # + the replica timeline under a load step

Set-up (once): simulates 29 days of demand into a throw-away lake (``tests.lake_fixtures.write_lake``), trains
the champions single-process, then starts each server as its own process on 127.0.0.1 over that lake, with the
same settings (in-process online store bootstrapped from ``gold.zone_features``; no feed, so every server reads
identical windows):

* ``plain``: ``python -m serve --plain``: the same FastAPI app and ForecastService in one uvicorn process; the
  named baseline;
* ``serve``: ``python -m serve``: Ray Serve, one replica, inference under ``@serve.batch``, through Serve's HAProxy
  ingress on ``serving.port`` (``serving.ingress``, the default); ``serve_proxy``: the same through Serve's Python
  proxy (``serving.ingress=proxy``);
* ``serve_direct``: the same service, the load sent to the replica's own port (Ray Serve direct ingress,
  ``serving.direct_ingress``): the same replica, app and batching without the proxy's hop;
* ``serve_2r``: Ray Serve with two replicas behind HAProxy (the machine has two cores); ``serve_haproxy`` and
  ``serve_haproxy_2r``: ``serve`` and ``serve_2r`` with the ingress named, as older results' commands ask for them;
* ``serve_mainloop``, ``serve_grpc`` (only with ``--servers``): one replica with Ray Serve knobs set in the
  environment the local Ray inherits: three of its "throughput optimized" preset (requests on the main event loops,
  batched request logs; the first two are now ``serving.main_loop``, on by default), or the proxy reaching the
  replica over Serve's gRPC data plane; ``serve_direct_threads``: ``serve_direct`` with ``serving.main_loop`` off
  (Serve's default threading);
* ``plain_untuned``, ``serve_direct_untuned`` (only with ``--servers``): ``plain`` and ``serve_direct`` without
  ``serving.freeze_heap`` and with the SDK's 512-span export batches (``serving.trace_export_batch_size``), the
  settings before they became defaults: what the two buy in the latency tail; ``serve_direct_spans512``: only the
  export batches as before (a replica's heap is frozen by Serve either way);
* ``serve_nowait`` (only with ``--servers``): one replica, ``@serve.batch`` without its wait (what batching costs
  a lone request and buys under concurrency).

Scenarios: ``single`` = ``GET /v1/forecast/{zone}?horizon=60`` (random zone per worker) and ``all`` = ``POST
/v1/forecast {"horizons": [15, 30, 60]}`` (every zone × horizon in one request), each at concurrency 1, 8 and 32,
driven from a second process (closed loop) by h2load (:mod:`benchmarks.h2load_client`, ``--seconds`` per run; the
default) or by the Python client :mod:`benchmarks.http_load` (``--client httpx``, ``--requests`` per run). Per
run: p50/p95/p99 latency and throughput; reported: the median over ``--runs``; ratios are Serve / plain of the
medians.

Goals (issue 9): single-zone p99 <= 50 ms at concurrency 8; all-zones p99 <= 100 ms; Serve throughput >= 0.6x plain.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from benchmarks.common import bench_settings, overridden_settings, percentile, print_table, write_result
from benchmarks.h2load_client import h2load_binary, run_h2load
from ridecast.stack.process import free_port

GOALS = {"single_p99_ms_c8": 50.0, "all_p99_ms": 100.0, "serve_throughput_ratio": 0.6}
CONCURRENCY = (1, 8, 32)
ONE_REPLICA = {"RIDECAST_SERVING__MIN_REPLICAS": "1", "RIDECAST_SERVING__MAX_REPLICAS": "1"}
PROXY_1R = {**ONE_REPLICA, "RIDECAST_SERVING__INGRESS": "proxy"}  # the knobs of Serve's Python proxy
UNTUNED = {"RIDECAST_SERVING__FREEZE_HEAP": "false", "RIDECAST_SERVING__TRACE_EXPORT_BATCH_SIZE": "512"}
SERVERS = {
    "plain": (["--plain"], {}),
    "serve": ([], ONE_REPLICA),
    # one replica through Serve's Python proxy (serving.ingress=proxy) instead of its HAProxy ingress, the default
    "serve_proxy": ([], PROXY_1R),
    "serve_direct": ([], ONE_REPLICA),  # load to the replica's own port (PAST_THE_PROXY)
    "serve_2r": ([], {"RIDECAST_SERVING__MIN_REPLICAS": "2", "RIDECAST_SERVING__MAX_REPLICAS": "2"}),
    # one replica, @serve.batch without a wait: a batch is whatever is already queued (the latency of batching)
    "serve_nowait": ([], {**ONE_REPLICA, "RIDECAST_SERVING__BATCH_WAIT_TIMEOUT_S": "0"}),
    # one replica with three knobs of Ray Serve's "throughput optimized" preset (without its direct ingress): user
    # code and routing on the main event loops, request logs written in batches (the local Ray inherits them)
    "serve_mainloop": ([], {**PROXY_1R, "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
                            "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
                            "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000"}),
    # the replica's port with Serve's default threading (serving.main_loop off): what the main loop saves
    "serve_direct_threads": ([], {**ONE_REPLICA, "RIDECAST_SERVING__MAIN_LOOP": "false"}),
    # one replica, the proxy reaching it over Serve's gRPC data plane instead of Ray actor calls
    "serve_grpc": ([], {**PROXY_1R, "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1"}),
    # serve and serve_2r with the HAProxy ingress named (as before it became the default: older results' commands)
    "serve_haproxy": ([], {**ONE_REPLICA, "RIDECAST_SERVING__INGRESS": "haproxy"}),
    "serve_haproxy_2r": ([], {"RIDECAST_SERVING__MIN_REPLICAS": "2", "RIDECAST_SERVING__MAX_REPLICAS": "2",
                              "RIDECAST_SERVING__INGRESS": "haproxy"}),
    # without the two tail-latency settings (only with --servers): the start-up heap left in the collector's full
    # passes, spans exported in the SDK's default 512-span batches; the ratio to plain / serve_direct is what they buy
    "plain_untuned": (["--plain"], UNTUNED),
    "serve_direct_untuned": ([], {**ONE_REPLICA, **UNTUNED}),
    "serve_direct_spans512": ([], {**ONE_REPLICA, "RIDECAST_SERVING__TRACE_EXPORT_BATCH_SIZE": "512"}),
    # --autoscaling: one replica that may become two, scaling quickly enough to see within a minute
    "serve_auto": ([], {"RIDECAST_SERVING__MIN_REPLICAS": "1", "RIDECAST_SERVING__MAX_REPLICAS": "2",
                        "RIDECAST_SERVING__TARGET_ONGOING_REQUESTS": "2", "RIDECAST_SERVING__UPSCALE_DELAY_S": "3",
                        "RIDECAST_SERVING__DOWNSCALE_DELAY_S": "15"}),
}


PAST_THE_PROXY = {"serve_direct", "serve_direct_untuned", "serve_direct_spans512", "serve_direct_threads"}


def _prepare(settings, days: int) -> dict[str, float]:
    """A lake of ``days`` simulated days ending two hours ago, and a champion per horizon."""
    import training
    from ridecast.sources.simulate import simulate_events
    from tests.lake_fixtures import write_lake

    end = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    t0 = time.perf_counter()
    write_lake(settings, list(simulate_events(end - timedelta(days=days), timedelta(days=days), seed=3)))
    t1 = time.perf_counter()
    settings.training.backtest_days = 1  # one fold: only the champions matter here
    tr = training.train(settings, backend="local")
    if not all(d.promoted for d in tr.decisions.values()):
        raise SystemExit(f"no champion for every horizon: {[d.reason for d in tr.decisions.values()]}")
    return {"lake_s": t1 - t0, "train_s": time.perf_counter() - t1}


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    import httpx

    try:
        r = httpx.get(url, timeout=timeout)
        return r.status_code, r.text
    except httpx.HTTPError as exc:
        return 0, str(exc)


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    ready_s: float


@contextlib.contextmanager
def serving(name: str, env: dict[str, str]) -> Iterator[Server]:
    """One server of ``SERVERS`` through the stack's own start/stop (``ridecast serve``'s path: ready when
    ``/readyz`` is 200; stopped with SIGINT, so Serve and Ray shut down in order), on a free port."""
    from ridecast.stack.serving import replica_urls, start_serving, stop_serving

    args, extra = SERVERS[name]
    with overridden_settings(**{**env, **extra, "RIDECAST_SERVING__PORT": str(free_port())}) as s:
        try:
            t0 = time.perf_counter()
            state = start_serving(s, plain="--plain" in args, timeout=300)
            url = state.url
            if name in PAST_THE_PROXY:
                deadline = time.monotonic() + 60
                while not (urls := replica_urls(s)) and time.monotonic() < deadline:
                    time.sleep(1.0)
                if not urls:
                    raise SystemExit(f"{name}: no replica answers on its own port (serving.direct_ingress off?)")
                url = urls[0]
            yield Server(name, url, time.perf_counter() - t0)
        finally:
            stop_serving(s)


def _load(client: str, url: str, body: str | None, concurrency: int, requests: int, seconds: float) -> dict[str, Any]:
    """One closed-loop run: ``requests`` from the Python client (``httpx``), or ``seconds`` of h2load."""
    if client == "h2load":
        return run_h2load(url, body, concurrency, seconds)
    cmd = [sys.executable, "-m", "benchmarks.http_load", "--url", url, "--concurrency", str(concurrency),
           "--requests", str(requests), "--max-seconds", "30"]
    if body:
        cmd += ["--body", body]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    raw = json.loads(out.stdout)
    lat = raw["latencies_ms"]
    return {
        "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
        "rps": len(lat) / raw["wall_s"] if raw["wall_s"] else None, "ok": len(lat), "failures": raw["failures"],
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _zones(server: Server) -> list[str]:
    return list(json.loads(_get(f"{server.url}/v1/zones")[1])["zones"])


def _scenarios(server: Server, zones: list[str]) -> dict[str, tuple[str, str | None, int]]:
    zone = random.Random(7).choice(zones)
    return {
        "single": (f"{server.url}/v1/forecast/{zone}?horizon=60", None, 1),
        "all": (f"{server.url}/v1/forecast", json.dumps({"horizons": [15, 30, 60]}), len(zones) * 3),
    }


def measure(names: list[str], env: dict[str, str], runs: int, requests: int, client: str,
            seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        with serving(name, env) as server:
            zones = _zones(server)
            res: dict[str, Any] = {"ready_s": server.ready_s}
            for scen, (url, body, _n) in _scenarios(server, zones).items():
                for c in CONCURRENCY:
                    n = requests if c > 1 else max(100, requests // 4)
                    per_run = [_load(client, url, body, c, n, seconds) for _ in range(runs)]
                    res[f"{scen}_c{c}"] = {
                        "runs": per_run,
                        **{k: _median(per_run, k) for k in ("p50_ms", "p95_ms", "p99_ms", "rps")},
                        "failed": sum(sum(r["failures"].values()) for r in per_run),
                    }
                    m = res[f"{scen}_c{c}"]
                    print(f"{name:9s} {scen:6s} c={c:<2d} p50 {m['p50_ms']:.1f} p99 {m['p99_ms']:.1f} ms "
                          f"{m['rps']:.0f} req/s failed {m['failed']}", flush=True)
            out[name] = res
    return out


def _replicas(metrics_text: str) -> float | None:
    """The replica gauge the service exports (``serve._telemetry.set_replicas``), read with prometheus-client's
    own text parser."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        if family.name == "ridecast_replicas" and family.samples:
            return family.samples[0].value
    return None


def autoscaling(env: dict[str, str], step_s: float, client: str) -> dict[str, Any]:
    """Idle, a load step at concurrency 32 for ``step_s``, idle again: replicas over time (1 s samples)."""
    import threading

    timeline: list[dict[str, float | None]] = []
    with serving("serve_auto", env) as server:
        url, body, _ = _scenarios(server, _zones(server))["single"]
        t0 = time.perf_counter()
        load_on = threading.Event()

        def step() -> None:
            time.sleep(10)
            load_on.set()
            if client == "h2load":
                run_h2load(url, None, 32, step_s)
            else:
                cmd = [sys.executable, "-m", "benchmarks.http_load", "--url", url, "--concurrency", "32",
                       "--requests", "1000000", "--max-seconds", str(step_s)]
                subprocess.run(cmd, capture_output=True, text=True, check=True)
            load_on.clear()

        th = threading.Thread(target=step, daemon=True)
        th.start()
        end = 10 + step_s + 60
        while time.perf_counter() - t0 < end:
            timeline.append({"t_s": round(time.perf_counter() - t0, 1), "load": 32 if load_on.is_set() else 0,
                             "replicas": _replicas(_get(f"{server.url}/metrics")[1])})
            time.sleep(1.0)
        th.join()
    ups = [p["t_s"] for a, p in zip(timeline, timeline[1:]) if (p["replicas"] or 0) > (a["replicas"] or 0)]
    downs = [p["t_s"] for a, p in zip(timeline, timeline[1:]) if (p["replicas"] or 0) < (a["replicas"] or 0)]
    return {"timeline": timeline, "scaled_up_at_s": ups, "scaled_down_at_s": downs, "load_from_s": 10,
            "load_until_s": 10 + step_s}


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, scen in zip(axes, ("single", "all")):
        for name, r in res["servers"].items():
            ax.plot(CONCURRENCY, [r[f"{scen}_c{c}"]["p99_ms"] for c in CONCURRENCY], marker="o", label=name)
        ax.set_title(f"{scen}: p99 latency (ms) by concurrency")
        ax.set_xlabel("concurrency")
        ax.set_xscale("log", base=2)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    if "autoscaling" in res:
        tl = res["autoscaling"]["timeline"]
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.step([p["t_s"] for p in tl], [p["replicas"] or 0 for p in tl], where="post", label="replicas")
        ax.step([p["t_s"] for p in tl], [p["load"] / 16 for p in tl], where="post", label="load (concurrency/16)")
        ax.set_xlabel("seconds")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path.with_name(path.stem + "_autoscaling.png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=600, help="requests per run at concurrency > 1")
    ap.add_argument("--days", type=int, default=29)
    ap.add_argument("--servers", default="plain,serve,serve_proxy,serve_direct,serve_2r")
    ap.add_argument("--autoscaling", action="store_true")
    ap.add_argument("--step-s", type=float, default=40.0)
    ap.add_argument("--client", choices=("h2load", "httpx"), default="h2load",
                    help="load generator: h2load (C, benchmarks/h2load_client.py) or Python (benchmarks/http_load.py)")
    ap.add_argument("--seconds", type=float, default=10.0, help="h2load: seconds per run (after a 1 s warm-up)")
    ap.add_argument("--name", default="serve_latency", help="results file name (benchmarks/results/<name>.json)")
    a = ap.parse_args()
    with bench_settings("serve", RIDECAST_SERVING__RUN_FEED="false",
                        RIDECAST_SERVING__MAX_FEATURE_AGE_S=str(10 * 86400)) as s:
        if a.client == "h2load":
            h2load_binary()  # before minutes of set-up: fail now, with the fix
        setup = _prepare(s, a.days)
        env = {k: v for k, v in os.environ.items() if k.startswith("RIDECAST_")}
        res: dict[str, Any] = {"setup": setup, "client": a.client,
                               "servers": measure(a.servers.split(","), env, a.runs, a.requests, a.client, a.seconds)}
        if a.autoscaling:
            res["autoscaling"] = autoscaling(env, a.step_s, a.client)
        sv = res["servers"]
        ratios = {}
        if "plain" in sv:
            for name in sv:
                if name != "plain":
                    ratios[name] = {k: sv[name][k]["rps"] / sv["plain"][k]["rps"] for k in sv["plain"]
                                    if k != "ready_s" and sv["plain"][k]["rps"]}
        res["throughput_ratio_vs_plain"] = ratios
        res["goals"] = GOALS
        path = write_result(a.name, res)
        _plot(res, path.with_suffix(".png"))
    rows = []
    for name, r in sv.items():
        for k, m in r.items():
            if k == "ready_s":
                continue
            ratio = ratios.get(name, {}).get(k)
            rows.append((f"{name} {k}", f"p50 {m['p50_ms']:.1f} / p95 {m['p95_ms']:.1f} / p99 {m['p99_ms']:.1f} ms",
                         f"{m['rps']:.0f} req/s" + (f" ({ratio:.2f}x plain)" if ratio else "")))
    print_table("online forecasting: Ray Serve vs plain uvicorn (medians)", rows)


if __name__ == "__main__":
    main()
