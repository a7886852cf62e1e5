"""Shared pieces of the benchmarks: a throw-away state dir, the broker, a peak-memory sampler, reporting.

Every benchmark runs the real embedded stack (the broker, the PyFlink job under ``.venv-flink`` writing Iceberg) in
a temporary ``RIDECAST_HOME``, so it never touches a developer's ``.ridecast`` or another engineer's stack.
Settings travel through ``RIDECAST_*`` environment variables (set in this process, inherited by the
children it starts), exactly as in production; :func:`bench_settings` sets them and restores them after.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import psutil

from ridecast.config import Settings, get_settings, repo_root

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GIB = 1024**3
MEMORY_GOAL_BYTES = 8 * GIB  # "a user's laptop"


# --------------------------------------------------------------------------- settings and state dir
@contextlib.contextmanager
def overridden_settings(**env: str) -> Iterator[Settings]:
    """``RIDECAST_*`` overrides in this process's environment (which servers it starts inherit) and the settings
    they make; the previous values and settings come back afterwards."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@contextlib.contextmanager
def bench_settings(prefix: str, keep: bool = False, **env: str) -> Iterator[Settings]:
    """A fresh temporary state dir and ``RIDECAST_*`` overrides for the duration of a benchmark."""
    home = Path(tempfile.mkdtemp(prefix=f"ridecast-bench-{prefix}-"))
    try:
        with overridden_settings(RIDECAST_HOME=str(home), **env) as s:
            yield s
    finally:
        if keep:
            print(f"state dir kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def running_broker(settings: Settings) -> Iterator[str]:
    """The embedded broker for this state dir (127.0.0.1, free port), with the project's topics."""
    from ridecast.stack.broker import ensure_topics, start_broker, stop_broker

    servers = start_broker(settings)
    try:
        ensure_topics(settings, servers)
        yield servers
    finally:
        stop_broker(settings)


# --------------------------------------------------------------------------- memory
def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


class _Sampler:
    """A daemon thread that calls ``sample()`` every ``interval_s`` while the ``with`` block runs."""

    interval_s: float

    def _start_thread(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def sample(self) -> Any:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class MemorySampler(_Sampler):
    """Peak of the summed RSS of this process and every process it started (broker, Flink driver + JVM,
    prefill/backfill jobs), plus any pid recorded in the state dir's run files.

    RSS counts shared pages once per process, so the sum slightly over-states the real footprint: a
    conservative figure for a memory goal. ``phase`` labels samples so each stage gets its own peak.
    """

    settings: Settings
    interval_s: float = 0.5
    phase: str = "setup"
    peak_bytes: int = 0
    peak_by_phase: dict[str, int] = field(default_factory=dict)
    peak_breakdown: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    def __post_init__(self) -> None:
        self._start_thread("rss-sampler")

    def _pids(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for p in _tree(os.getpid()):
            out[p.pid] = "bench+children"
        run_dir = self.settings.run_dir
        for rec_file in run_dir.glob("*.json") if run_dir.is_dir() else []:
            with contextlib.suppress(ValueError, OSError, KeyError):
                pid = json.loads(rec_file.read_text())["pid"]
                for p in _tree(pid):
                    out[p.pid] = rec_file.stem
        return out

    def sample(self) -> int:
        total = 0
        by_name: dict[str, int] = {}
        for pid in self._pids():
            try:
                p = psutil.Process(pid)
                rss = p.memory_info().rss
                name = p.name()
            except psutil.Error:
                continue
            total += rss
            key = "java" if name.startswith("java") else ("tansu" if "tansu" in name else name)
            by_name[key] = by_name.get(key, 0) + rss
        self.samples += 1
        if total > self.peak_bytes:
            self.peak_bytes = total
            self.peak_breakdown = by_name
        if total > self.peak_by_phase.get(self.phase, 0):
            self.peak_by_phase[self.phase] = total
        return total

    def report(self) -> dict[str, Any]:
        return {
            "peak_rss_bytes": self.peak_bytes,
            "peak_rss_gib": round(self.peak_bytes / GIB, 3),
            "goal_gib": MEMORY_GOAL_BYTES / GIB,
            "ratio_of_goal": round(self.peak_bytes / MEMORY_GOAL_BYTES, 3),
            "meets_goal": self.peak_bytes <= MEMORY_GOAL_BYTES,
            "peak_by_phase_gib": {k: round(v / GIB, 3) for k, v in self.peak_by_phase.items()},
            "peak_breakdown_gib": {k: round(v / GIB, 3) for k, v in sorted(self.peak_breakdown.items())},
            "samples": self.samples,
            "interval_s": self.interval_s,
        }



class CpuSampler(_Sampler):
    """CPU-seconds (user + system) of this process and every process it started, by process name.

    Sampled every 0.2 s, keeping each pid's last reading, so a process that lives < 0.2 s is missed and the
    last 0.2 s of one that exits is missed: a slight under-count. Ray renames its worker processes
    (``ray::TrainController``, ``ray::RayTrainWorker``...), so the names say which actor spent what (the
    first ``ray::Class`` name a process shows is kept; its title also changes with the method it runs).
    """

    def __init__(self, interval_s: float = 0.2):
        self.interval_s, self.by_pid = interval_s, {}
        self._start_thread("cpu-sampler")

    def sample(self) -> None:
        for p in _tree(os.getpid()):
            try:
                with p.oneshot():
                    ct, name = p.cpu_times(), p.name()
            except psutil.Error:
                continue
            rec = self.by_pid.setdefault(p.pid, {"name": name, "cpu_s": 0.0})
            if not rec["name"].startswith("ray::") or rec["name"] == "ray::IDLE":
                rec["name"] = name.split(".")[0]  # "ray::TrainController.run" -> "ray::TrainController"
            rec["cpu_s"] = max(rec["cpu_s"], ct.user + ct.system)

    def report(self) -> dict:
        by_name: dict[str, float] = {}
        for pid, rec in self.by_pid.items():
            name = "driver" if pid == psutil.Process().pid else rec["name"]
            by_name[name] = by_name.get(name, 0.0) + rec["cpu_s"]
        return {"cpu_s": round(sum(by_name.values()), 1),
                "cpu_by_process_s": {k: round(v, 1) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}}

# --------------------------------------------------------------------------- Flink logs
_LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


# a job's (only) source task started: Flink names it after the source table, or "KafkaSource" in a short chain
SOURCE_RUNNING = r"Source: .* switched from INITIALIZING to RUNNING"


def flink_log_events(settings: Settings, pattern: str, since: float = 0.0) -> list[tuple[float, str]]:
    """(epoch seconds, line) of Flink log lines matching ``pattern`` logged at or after ``since``.

    Flink's local-mode log (``$FLINK_LOG_DIR``) timestamps task state changes; its REST API is not bound
    in local mode, so this is how a benchmark learns when the job's tasks started and finished.
    """
    rx = re.compile(pattern)
    out = []
    for path in sorted((settings.log_dir / "flink").glob("*.log")):
        with path.open(errors="replace") as fh:
            for line in fh:
                m = _LOG_TS.match(line)
                if not m or not rx.search(line):
                    continue
                ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time
                if ts >= since - 1.0:
                    out.append((ts, line.rstrip()))
    return sorted(out)


def wait_for(predicate, timeout_s: float, interval_s: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def process_log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --------------------------------------------------------------------------- statistics and output
def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Rows of (metric, value, comparison/note), printed with Rich."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("vs baseline / goal")
    for metric, value, note in rows:
        table.add_row(metric, value, note)
    Console(width=140).print(table)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    print(f"results written to {path.relative_to(repo_root())}")
    return path


def fmt_s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f} s"


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f} ev/s"
