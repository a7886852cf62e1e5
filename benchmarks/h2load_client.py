"""Bounded HTTP load from h2load (nghttp2's C load generator, Debian's ``nghttp2-client``), the same closed loop as
:mod:`benchmarks.http_load`: ``concurrency`` HTTP/1.1 connections (``--h1``), each sending its next request when the
previous one is answered, for ``seconds`` after a one-second warm-up.

Why a second client: on two cores the Python client (httpx on asyncio) competes with the server for CPU, and its
own scheduling delays land in the measured latencies; h2load's one thread costs a fraction of that. Percentiles
are computed here from h2load's per-request log (``--log-file``: start, status, latency in µs, measured requests
only), not taken from its summary, so they come from the same code as :mod:`benchmarks.http_load`'s.

Why not wrk: Debian's wrk 4.1.0 reported latencies against this service that its own request count rules out at
concurrency 1 (a mean of 11 ms at 560 requests per second over one connection), while h2load's log and a plain
``http.client`` loop agreed with each other (benchmarks/README.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import percentile

__all__ = ["H2loadNotInstalledError", "h2load_binary", "run_h2load"]

WARMUP_S = 1


class H2loadNotInstalledError(RuntimeError):
    """h2load is not on PATH."""

    def __init__(self) -> None:
        super().__init__("h2load is not installed: run `make install` (scripts/bootstrap.sh installs Debian's "
                         "nghttp2-client), or pass --client httpx to use the Python load generator")


def h2load_binary() -> str:
    path = shutil.which("h2load")
    if path is None:
        raise H2loadNotInstalledError()
    return path


def run_h2load(url: str, body: str | None, concurrency: int, seconds: float) -> dict[str, Any]:
    """One run: latencies (ms) of the 2xx answers, failures by status or h2load's error kind, successful
    responses per second."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        log = Path(tmp) / "requests.log"
        cmd = [h2load_binary(), "--h1", "-t1", f"-c{concurrency}", f"-D{max(1, round(seconds))}",
               f"--warm-up-time={WARMUP_S}", f"--log-file={log}", url]
        if body:
            data = Path(tmp) / "body.json"
            data.write_text(body)
            cmd[1:1] = ["-d", str(data), "-H", "content-type: application/json"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        lines = log.read_text().split("\n") if log.exists() else []
    if not any(lines):
        raise RuntimeError(f"h2load measured no request against {url}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    for line in filter(None, lines):
        _start, status, micros = line.split("\t")
        if status.startswith("2"):
            latencies.append(int(micros) / 1000.0)
        else:
            failures[f"http_{status}"] += 1
    summary = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", out.stdout)
    if summary is None:
        raise RuntimeError(f"h2load printed no request summary:\n{out.stdout}\n{out.stderr}")
    for kind, n in zip(("failed", "errored", "timeout"), map(int, summary.groups())):
        if n and kind != "failed":  # "failed" also counts non-2xx answers, already counted from the log
            failures[kind] += n
    wall_s = max(1, round(seconds))
    return {
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99), "max_ms": max(latencies, default=None),
        "rps": len(latencies) / wall_s, "ok": len(latencies), "failures": dict(failures),
    }
