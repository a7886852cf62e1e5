"""The embedded stack's lifecycle as library calls: :func:`up`, :func:`down`, :func:`status`.

Each returns a plain result object and prints nothing, so the CLI (``ridecast up | down | status``) and the
demo share one code path and differ only in how they render (:mod:`ridecast.views`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ridecast.config import Settings, get_settings

if TYPE_CHECKING:
    from ridecast.stack.schedule import JobSchedule

__all__ = ["DownResult", "ProcessState", "ScheduleResult", "ServeResult", "StackStatus", "TableState", "TrinoResult",
           "UpResult", "down", "status", "up", "up_schedule", "up_serve", "up_trino"]


@dataclass(frozen=True)
class UpResult:
    servers: str
    topics: tuple[str, ...]
    catalog_uri: str
    state_dir: Path
    feature_job_pid: int | None = None
    restored_from: str | None = None  # the checkpoint the feature job restored; None for a fresh start


@dataclass(frozen=True)
class TrinoResult:
    url: str
    catalog: str


@dataclass(frozen=True)
class ServeResult:
    url: str
    mode: str  # "ray" (Ray Serve) or "plain" (one uvicorn process)
    pid: int
    readiness: str  # what /readyz answered
    replica_urls: tuple[str, ...] = ()  # the replicas' own HTTP servers (direct ingress), past the proxy


@dataclass(frozen=True)
class ScheduleResult:
    pid: int
    jobs: tuple[JobSchedule, ...]
    runs_file: Path
    timezone: str


@dataclass(frozen=True)
class DownResult:
    stopped: tuple[str, ...]


@dataclass(frozen=True)
class ProcessState:
    name: str
    pid: int | None  # None: not running
    log_file: Path
    health: str | None = None  # what its health check said (broker, Trino); None where there is none

    @property
    def running(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class TableState:
    identifier: str
    rows: int
    snapshots: int
    last_commit_ms: int | None  # when the current snapshot was committed; None before the first commit


@dataclass(frozen=True)
class StackStatus:
    processes: tuple[ProcessState, ...]
    checkpoint: Path | None
    tables: tuple[TableState, ...] = field(default_factory=tuple)
    schedules: tuple[JobSchedule, ...] = field(default_factory=tuple)


def up(settings: Settings | None = None, *, job: bool = True) -> UpResult:
    """Start the broker, create topics and tables; with ``job``, start the feature job (it writes Iceberg).

    Idempotent: whatever already runs is reused (each start finds its live pid file).
    """
    from iceberg_catalog.catalog import ensure_tables, open_catalog
    from ridecast.stack.broker import ensure_topics, start_broker
    from ridecast.stack.pipeline import start_stream

    s = settings or get_settings()
    servers = start_broker(s)
    ensure_topics(s, servers)
    ensure_tables(open_catalog(s))
    base = dict(servers=servers, topics=(s.kafka.events_topic, s.kafka.features_topic), catalog_uri=s.catalog_uri,
                state_dir=s.state_dir)
    if not job:
        return UpResult(**base)
    stream = start_stream(s)
    return UpResult(**base, feature_job_pid=stream["pid"], restored_from=stream.get("restored_from") or None)


def up_trino(settings: Settings | None = None) -> TrinoResult:
    """Start the embedded Trino server over the same catalog (optional: it costs gigabytes of memory)."""
    from ridecast.stack.trino import start_trino

    s = settings or get_settings()
    return TrinoResult(start_trino(s), s.sql.trino_catalog)


def up_serve(settings: Settings | None = None, *, plain: bool = False,
             on_wait: Callable[[str], None] | None = None) -> ServeResult:
    """Start the forecasting service in the background (Ray Serve, or ``plain`` uvicorn) and wait until ready."""
    from ridecast.stack.serving import start_serving

    state = start_serving(settings or get_settings(), plain=plain, on_wait=on_wait)
    return ServeResult(state.url, state.mode, state.pid, state.detail, state.replica_urls)


def up_schedule(settings: Settings | None = None) -> ScheduleResult:
    """Start the scheduler that runs ``settings.schedules`` (retrain, forecast refresh, maintenance) here."""
    from ridecast.stack.schedule import job_schedules, runs_file, start_scheduler

    s = settings or get_settings()
    rec = start_scheduler(s)
    return ScheduleResult(rec["pid"], tuple(job_schedules(s)), runs_file(s), s.schedules.timezone)


def down(settings: Settings | None = None) -> DownResult:
    """Stop everything :func:`up`, :func:`up_trino`, :func:`up_serve` and :func:`up_schedule` started, and the live
    traffic (checkpoints and tables stay). The scheduler goes first, so no job starts against a stack that is
    stopping; then the traffic, so nothing is sent to a broker that is stopping; then the service."""
    from ridecast.stack.broker import stop_broker
    from ridecast.stack.pipeline import stop_stream
    from ridecast.stack.schedule import stop_scheduler
    from ridecast.stack.serving import stop_serving
    from ridecast.stack.traffic import stop_traffic
    from ridecast.stack.trino import stop_trino

    s = settings or get_settings()
    stopped = ["scheduler"] if stop_scheduler(s) else []
    stopped += ["traffic"] if stop_traffic(s) else []
    stopped += ["serve"] if stop_serving(s) else []
    stopped += ["trino"] if stop_trino(s) else []
    stopped += stop_stream(s)
    if stop_broker(s):
        stopped.append("broker")
    return DownResult(tuple(stopped))


def status(settings: Settings | None = None) -> StackStatus:
    """What runs (with health checks), the newest checkpoint, and each table's rows, snapshots and last commit."""
    from iceberg_catalog.catalog import ensure_tables, open_catalog
    from ridecast.stack.broker import broker_health, broker_process
    from ridecast.stack.pipeline import feature_job_process, latest_checkpoint
    from ridecast.stack.schedule import job_schedules, scheduler_process
    from ridecast.stack.serving import serving_health, serving_process
    from ridecast.stack.traffic import traffic_process
    from ridecast.stack.trino import trino_health, trino_process

    s = settings or get_settings()
    checks = {"broker": broker_health, "trino": trino_health, "serve": serving_health,
              "traffic": lambda _s: "simulated trip events sent as they happen"}
    schedules = job_schedules(s)
    checks["scheduler"] = lambda _: next((f"next: {j.job} at {j.next_run.isoformat(timespec='minutes')}"
                                          for j in sorted(schedules, key=lambda j: j.next_run)), "no jobs")
    procs = []
    for proc in (broker_process(s), feature_job_process(s), trino_process(s), serving_process(s), scheduler_process(s),
                 traffic_process(s)):
        rec = proc.info()
        health = checks[proc.name](s) if rec and proc.name in checks else None
        procs.append(ProcessState(proc.name, rec["pid"] if rec else None, proc.log_file, health))
    tables = []
    for ident, table in ensure_tables(open_catalog(s)).items():
        snap = table.current_snapshot()
        rows = snap.summary.additional_properties.get("total-records", "0") if snap and snap.summary else "0"
        tables.append(TableState(ident, int(rows), len(table.metadata.snapshots),
                                 snap.timestamp_ms if snap else None))
    return StackStatus(tuple(procs), latest_checkpoint(s.checkpoint_dir), tuple(tables), tuple(schedules))
