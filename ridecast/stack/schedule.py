"""The embedded scheduler: ``ridecast up --schedule`` runs the orchestrated jobs (retrain, forecast refresh,
maintenance) at the cron times in ``settings.schedules``, the same definition the chart renders as CronJobs.

It is a managed process like the broker and Trino (:class:`~ridecast.stack.process.ManagedProcess`: a pid file,
a log file, stopped by ``ridecast down``, shown by ``ridecast status``). Each run is a subprocess of the ridecast
CLI (``python -m ridecast <args>``), so a job that crashes or leaks memory cannot take the scheduler with it,
and a job behaves exactly as when a user or a CronJob runs it.

Semantics, chosen to match a Kubernetes CronJob with ``concurrencyPolicy: Forbid``:

* one run at a time, never two runs of the same job at once (one loop runs them in turn, and each run holds
  an exclusive ``flock`` on its job's lock file, so even a second scheduler over the same state dir cannot
  overlap it);
* a job whose cron times passed while nothing ran (downtime, or a long run of another job) runs once, for the
  latest missed time, not once per missed time (:func:`due_runs`);
* the first time the scheduler sees a job it starts counting from then: it does not run every job on start.

Every run is recorded in ``<state_dir>/schedule/runs.jsonl``: a ``started`` line before the subprocess starts
and a ``finished`` line (end, outcome, exit code) after, so a run cut short by ``kill -9`` still shows up, as
``interrupted``. The last handled cron time per job is kept in ``schedule/state.json`` (written atomically after
each run), which is what makes catch-up after downtime exact.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from ridecast.config import Settings, get_settings
from ridecast.stack.process import ManagedProcess

__all__ = [
    "DueRun",
    "JobSchedule",
    "RunRecord",
    "due_runs",
    "job_schedules",
    "latest_fire",
    "next_fire",
    "next_wakeup",
    "read_runs",
    "run_scheduler",
    "scheduler_process",
    "start_scheduler",
    "stop_scheduler",
]

Clock = Callable[[], datetime]

# the scheduler re-reads the clock at least this often while idle, so a wall-clock jump (suspend, NTP) is noticed
MAX_IDLE_S = 30.0


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- what is due when (pure)


def latest_fire(cron: str, tz: str, now: datetime) -> datetime:
    """The newest time at or before ``now`` that ``cron`` (in zone ``tz``) fires, as an aware datetime."""
    from croniter import croniter

    local = now.astimezone(ZoneInfo(tz))
    # croniter's get_prev is strictly before its start; one microsecond later makes "at now" count
    return croniter(cron, local + timedelta(microseconds=1)).get_prev(datetime)


def next_fire(cron: str, tz: str, now: datetime) -> datetime:
    """The first time strictly after ``now`` that ``cron`` fires."""
    from croniter import croniter

    return croniter(cron, now.astimezone(ZoneInfo(tz))).get_next(datetime)


@dataclass(frozen=True)
class DueRun:
    job: str
    scheduled: datetime  # the cron time this run stands for (the latest one missed)


def due_runs(jobs: Sequence[tuple[str, str]], tz: str, handled: Mapping[str, datetime],
             now: datetime) -> list[DueRun]:
    """The runs due at ``now``: each job whose latest cron time is after the last time it handled, once.

    However many cron times passed since ``handled[job]``, the job is due once, for the newest of them (a
    missed run after downtime runs once, not N times). A job missing from ``handled`` is not due: the caller
    records when it first saw it. Oldest scheduled time first, ties in ``jobs`` order.
    """
    due = []
    for order, (job, cron) in enumerate(jobs):
        if job not in handled:
            continue
        last = latest_fire(cron, tz, now)
        if last > handled[job]:
            due.append((last, order, DueRun(job, last)))
    return [d for _, _, d in sorted(due, key=lambda t: (t[0], t[1]))]


def next_wakeup(jobs: Sequence[tuple[str, str]], tz: str, now: datetime) -> datetime | None:
    """When the next job fires after ``now`` (None when no job is scheduled)."""
    return min((next_fire(cron, tz, now) for _, cron in jobs), default=None)


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str
    command: tuple[str, ...]
    scheduled: datetime
    started: datetime
    log_file: Path
    ended: datetime | None = None
    # succeeded | failed | timeout | interrupted (the scheduler was stopped or killed) | skipped | running
    outcome: str = "running"
    exit_code: int | None = None
    message: str = ""


@dataclass(frozen=True)
class JobSchedule:
    """One scheduled job as ``ridecast status`` shows it."""

    job: str
    cron: str
    command: tuple[str, ...]
    next_run: datetime
    last: RunRecord | None


def _dir(s: Settings) -> Path:
    return s.state_dir / "schedule"


def runs_file(s: Settings) -> Path:
    return _dir(s) / "runs.jsonl"


def _state_file(s: Settings) -> Path:
    return _dir(s) / "state.json"


def _append(s: Settings, record: dict) -> None:
    path = runs_file(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:  # one short write per line: a crash leaves whole lines
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_runs(settings: Settings | None = None) -> list[RunRecord]:
    """Every recorded run, oldest first. A run without a ``finished`` line is ``running`` while the scheduler
    that started it lives, else ``interrupted``."""
    s = settings or get_settings()
    try:
        lines = runs_file(s).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    started: dict[str, dict] = {}
    finished: dict[str, dict] = {}
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:  # a torn last line after a crash mid-write
            continue
        (started if rec.get("event") == "started" else finished)[rec["run_id"]] = rec
    live = scheduler_process(s).info()
    out = []
    for run_id, st in started.items():
        fin = finished.get(run_id)
        if fin is not None:
            end = dict(ended=datetime.fromisoformat(fin["ended"]), outcome=fin["outcome"],
                       exit_code=fin.get("exit_code"), message=fin.get("message", ""))
        elif live is not None and live["pid"] == st.get("scheduler_pid"):
            end = {}
        else:
            end = dict(outcome="interrupted", message="the scheduler stopped before the run finished")
        out.append(RunRecord(run_id, st["job"], tuple(st["command"]), datetime.fromisoformat(st["scheduled"]),
                             datetime.fromisoformat(st["started"]), Path(st["log_file"]), **end))
    return sorted(out, key=lambda r: r.started)


def job_schedules(settings: Settings | None = None, now: datetime | None = None) -> list[JobSchedule]:
    """Each scheduled job with its next cron time and its last recorded run."""
    s = settings or get_settings()
    now = now or _utcnow()
    last: dict[str, RunRecord] = {}
    for r in read_runs(s):
        last[r.job] = r
    return [JobSchedule(job, cron, tuple(s.schedules.commands[job]), next_fire(cron, s.schedules.timezone, now),
                        last.get(job)) for job, cron in s.schedules.jobs()]


def _load_handled(s: Settings, now: datetime) -> dict[str, datetime]:
    """The last handled cron time per job; a job seen for the first time counts from ``now``."""
    try:
        raw = json.loads(_state_file(s).read_text())
    except (FileNotFoundError, ValueError):
        raw = {}
    handled = {job: datetime.fromisoformat(t) for job, t in raw.get("handled", {}).items()}
    for job, _ in s.schedules.jobs():
        handled.setdefault(job, now)
    _save_handled(s, handled)
    return handled


def _save_handled(s: Settings, handled: Mapping[str, datetime]) -> None:
    path = _state_file(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"handled": {job: t.isoformat() for job, t in handled.items()}}))
    tmp.replace(path)  # atomic: a crash leaves the old state or the new one


# ---------------------------------------------------------------- running


class _Runner:
    """Runs one job at a time as a CLI subprocess, each under its job's exclusive lock."""

    def __init__(self, s: Settings, stop: threading.Event) -> None:
        self.s = s
        self.stop = stop

    def run(self, due: DueRun) -> RunRecord:
        s = self.s
        command = tuple(s.schedules.commands[due.job])
        log_file = s.log_dir / "schedule" / f"{due.job}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex[:12]
        started = _utcnow()
        _append(s, dict(event="started", run_id=run_id, job=due.job, command=list(command),
                        scheduled=due.scheduled.isoformat(), started=started.isoformat(), log_file=str(log_file),
                        scheduler_pid=os.getpid()))
        lock_path = s.run_dir / f"schedule-{due.job}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                outcome, code, message = "skipped", None, "another run of this job holds its lock"
            else:
                outcome, code, message = self._subprocess(command, log_file)
        ended = _utcnow()
        _append(s, dict(event="finished", run_id=run_id, ended=ended.isoformat(), outcome=outcome, exit_code=code,
                        message=message))
        return RunRecord(run_id, due.job, command, due.scheduled, started, log_file, ended, outcome, code, message)

    def _subprocess(self, command: tuple[str, ...], log_file: Path) -> tuple[str, int | None, str]:
        deadline = time.monotonic() + self.s.schedules.job_timeout_s
        with log_file.open("ab") as log:
            log.write(f"\n=== {_utcnow().isoformat(timespec='seconds')} ridecast {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen([sys.executable, "-m", "ridecast", *command], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            while True:
                try:
                    code = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if self.stop.is_set() or time.monotonic() > deadline:
                    proc.terminate()
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    if self.stop.is_set():
                        return "interrupted", proc.returncode, "the scheduler was stopped"
                    return "timeout", proc.returncode, f"killed after {self.s.schedules.job_timeout_s:g}s"
        if code == 0:
            return "succeeded", 0, ""
        return "failed", code, f"exit code {code}, see {log_file}"


def run_scheduler(settings: Settings | None = None, *, stop: threading.Event | None = None, clock: Clock = _utcnow,
                  wait: Callable[[float], None] | None = None,
                  on_run: Callable[[RunRecord], None] | None = None) -> None:
    """The scheduler loop, until ``stop`` is set: run what is due, one at a time, then sleep until the next cron
    time. ``clock`` and ``wait`` (the sleep, default ``stop.wait``) are injectable so a test can drive time; the
    real process uses the wall clock."""
    s = settings or get_settings()
    stop = stop or threading.Event()
    wait = wait or stop.wait
    jobs, tz = s.schedules.jobs(), s.schedules.timezone
    handled = _load_handled(s, clock())
    runner = _Runner(s, stop)
    while not stop.is_set():
        due = due_runs(jobs, tz, handled, clock())
        for d in due:
            if stop.is_set():
                break
            record = runner.run(d)
            if record.outcome != "interrupted":  # a run cut short by `down` runs again on the next start
                handled[d.job] = d.scheduled
                _save_handled(s, handled)
            if on_run is not None:
                on_run(record)
        if due:
            continue  # time passed while running: look again before sleeping
        wake = next_wakeup(jobs, tz, clock())
        idle = MAX_IDLE_S if wake is None else (wake - clock()).total_seconds()
        wait(min(max(idle, 0.05), MAX_IDLE_S))


# ---------------------------------------------------------------- the managed process


def scheduler_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("scheduler", s.run_dir, s.log_dir)


def start_scheduler(settings: Settings | None = None) -> dict:
    """Start the scheduler process (idempotent: a live one is reused). It and its runs see the caller's state
    dir and schedules, whatever source they came from (environment, file or arguments)."""
    s = settings or get_settings()
    env = {"RIDECAST_HOME": str(s.state_dir), "RIDECAST_SCHEDULES": s.schedules.model_dump_json()}
    return scheduler_process(s).start([sys.executable, "-m", "ridecast.stack.schedule"], env=env)


def stop_scheduler(settings: Settings | None = None) -> bool:
    """Stop the scheduler; a run in progress is terminated and recorded as interrupted (it runs again on the
    next start, as the missed run it then is)."""
    return scheduler_process(settings).stop(timeout=30.0)


def main() -> None:  # pragma: no cover - the managed process's entry point, exercised by the integration test
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    s = get_settings()
    print(f"scheduler: jobs {s.schedules.jobs()} in {s.schedules.timezone}; runs in {runs_file(s)}", flush=True)
    run_scheduler(s, stop=stop, on_run=lambda r: print(
        f"{r.ended:%Y-%m-%dT%H:%M:%S%z} {r.job} ({r.scheduled.isoformat()}): {r.outcome} {r.message}", flush=True))


if __name__ == "__main__":  # pragma: no cover
    main()
