"""Bounded HTTP load from wrk (a C load generator, Debian's ``wrk``), the same closed loop as
:mod:`benchmarks.http_load`: ``concurrency`` connections each send their next request when the previous one is
answered, for ``seconds``.

Why a second client: on two cores the Python client (httpx on asyncio) competes with the server for CPU, and its
own scheduling delays land in the measured latencies. wrk's one thread costs a fraction of that, so its figures
are closer to what the server alone does; both are kept, the benchmark says which one a figure comes from.

wrk reports through ``benchmarks/wrk_report.lua`` (a JSON line after its own text report). Its percentiles cover
every response, non-2xx included; those are counted as failures (``errors.status``), and a run with failures is
reported as such, never silently mixed into the latencies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("wrk_report.lua")
MARK = "WRK_JSON "


class WrkNotInstalledError(RuntimeError):
    """wrk is not on PATH."""

    def __init__(self) -> None:
        super().__init__("wrk is not installed: run `make install` (scripts/bootstrap.sh installs Debian's wrk), "
                         "or pass --client httpx to use the Python load generator")


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkNotInstalledError()
    return path


def run_wrk(url: str, body: str | None, concurrency: int, seconds: float, *, timeout_s: float = 30.0) -> dict[str, Any]:
    """One wrk run; latencies in ms, throughput as successful responses per second."""
    cmd = [wrk_binary(), "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s:g}s",
           "-s", str(SCRIPT), url]
    env = {**os.environ, "WRK_BODY": body or ""}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary (is {SCRIPT.name} intact?):\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line[len(MARK):])
    failures = {k: v for k, v in raw["errors"].items() if v}
    ok = raw["requests"] - raw["errors"]["status"]
    wall_s = raw["duration_us"] / 1e6
    return {
        "p50_ms": raw["p50_us"] / 1000, "p95_ms": raw["p95_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000, "rps": ok / wall_s if wall_s else None, "ok": ok, "failures": failures,
    }
