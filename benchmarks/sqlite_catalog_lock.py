"""Iceberg's Flink sink against a SQLite catalog that another writer holds locked.

    .venv/bin/python -m benchmarks.sqlite_catalog_lock [--hold 8] [--busy-ms 1000 60000]

Several writers share the embedded catalog file: the job's four table committers, and pyiceberg beside them
(``ridecast maintain``, training, a second job). SQLite lets one write at a time; a writer that finds the file
locked waits at most the connection's busy timeout, then fails with "database is locked". This runs a small
backfill through the real job once per busy timeout while another process holds the catalog file in an
exclusive transaction for ``--hold`` seconds at a time, released for 0.2 s in between, from the moment the job
is submitted until it ends (so the job's catalog reads and its four commits meet the lock), and records whether
the job got through, its time, and how many "database is locked" lines its log has. The baseline is sqlite-jdbc's
own default busy timeout (3 s).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.common import bench_settings, print_table, write_result


def _hold_lock(db: str, log_path, hold_s: float, ready: threading.Event, stop: threading.Event) -> None:
    """Take the catalog file's write lock once the job is submitted, keep it ``hold_s`` seconds."""
    while not stop.is_set():
        if log_path.exists() and "RIDECAST_JOB_ID=" in log_path.read_text(errors="replace"):
            break
        time.sleep(0.05)
    if stop.is_set():
        return
    def job_over() -> bool:
        text = log_path.read_text(errors="replace")
        return stop.is_set() or "RIDECAST_JOB_FINISHED" in text or "Traceback" in text

    con = sqlite3.connect(db, timeout=120, isolation_level=None)
    while not job_over():  # held, released for a moment, held again: until the job is over
        con.execute("BEGIN EXCLUSIVE")
        ready.set()
        until = time.monotonic() + hold_s
        while time.monotonic() < until and not job_over():
            time.sleep(0.1)
        con.execute("ROLLBACK")
        time.sleep(0.2)
    con.close()


def one(busy_ms: int, hold_s: float) -> dict[str, Any]:
    from ridecast.events import load_zones
    from ridecast.sources.simulate import simulate_events
    from ridecast.stack.pipeline import backfill

    env = {"RIDECAST_CATALOG__PROPERTIES": json.dumps({"jdbc.busy_timeout": str(busy_ms)})}
    with bench_settings(f"sqlite-lock-{busy_ms}", **env) as settings:
        zones = [z for z in load_zones(settings.zones_file)][:3]
        start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
        path = settings.state_dir / "events.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        events = list(simulate_events(start, timedelta(hours=1), seed=1, zones=zones))
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        from iceberg_catalog.catalog import ensure_tables, open_catalog

        ensure_tables(open_catalog(settings))
        import hashlib

        bid = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        log_path = settings.log_dir / f"backfill-{bid}.log"
        ready, stop = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_lock, args=(str(settings.state_dir / "catalog.db"), log_path,
                                                           hold_s, ready, stop), daemon=True)
        holder.start()
        t0 = time.time()
        error = None
        try:
            res = backfill(path, settings, progress=False, timeout_s=600)
            rows = res.committed
        except Exception as exc:  # the failure is the measurement
            error, rows = f"{type(exc).__name__}: {exc}", {}
        took = time.time() - t0
        stop.set()
        holder.join()
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        cause = [line.strip() for line in text.splitlines() if line.startswith("Caused by:")][-1:]
        flink_logs = "".join(p.read_text(errors="replace") for p in (settings.log_dir / "flink").glob("*.log"))
        return {"busy_timeout_ms": busy_ms, "hold_s": hold_s, "lock_taken": ready.is_set(), "ok": error is None,
                "error": error, "root_cause": cause[0] if cause else None, "seconds": took, "rows": rows,
                "locked_lines": (text + flink_logs).count("database is locked")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hold", type=float, default=8.0, help="seconds the other writer holds the lock")
    ap.add_argument("--busy-ms", type=int, nargs="+", default=[3000, 60000])
    args = ap.parse_args(argv)
    runs = [one(ms, args.hold) for ms in args.busy_ms]
    print_table(f"SQLite catalog locked {args.hold:g} s at a time (0.2 s gaps) while the job runs",
                [(f"busy_timeout {r['busy_timeout_ms']} ms", "ok" if r["ok"] else "FAILED",
                  f"{r['seconds']:.0f} s, {r['locked_lines']} 'database is locked' log lines"
                  + ("" if r["lock_taken"] else " (lock never taken)")) for r in runs])
    write_result("sqlite_catalog_lock", {"runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
