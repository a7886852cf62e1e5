"""Rich renderings of the library's result objects, shared by the CLI commands and the demo.

Pure functions from a result to a Rich renderable (or text): no I/O, so both callers print the same thing and
a unit test can render a result without running anything. They sit above every library layer and below the
roof (``ridecast.demo``, ``ridecast.commands``), which is why they are not in either.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ridecast.sources.deliver import Delivery
    from ridecast.sources.ingest import IngestResult
    from ridecast.sources.simulate import SimulationResult
    from ridecast.stack.cluster import ClusterStatus, RayJobState
    from ridecast.stack.lifecycle import DownResult, ScheduleResult, ServeResult, StackStatus, TrinoResult, UpResult
    from ridecast.stack.maintain import MaintainReport
    from ridecast.stack.schedule import JobSchedule
    from training import TrainResult

__all__ = ["cluster_status_table", "down_text", "forecast_table", "ingest_table", "key_value_table", "maintain_table",
           "rayjob_line", "schedule_table", "schedule_text", "serve_text", "simulation_table", "spinner", "status_view",
           "train_view", "up_text"]


def key_value_table(title: str, rows: list[tuple[str, object]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def spinner(console: Console | None = None) -> Progress:
    """A spinner with a description and elapsed time, for work that reports steps but no fraction done."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console)


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def up_text(r: UpResult) -> Text:
    lines = [f"[green]✓[/] Kafka at {r.servers}; topics {', '.join(r.topics)}",
             f"[green]✓[/] Iceberg catalog {r.catalog_uri}"]
    if r.feature_job_pid is not None:
        lines.append(f"[green]✓[/] feature job pid {r.feature_job_pid}, restored from "
                     f"{r.restored_from or 'no checkpoint (fresh start)'}")
    lines.append(f"state and logs in {r.state_dir}")
    return Text.from_markup("\n".join(lines))


def trino_text(r: TrinoResult) -> Text:
    return Text.from_markup(f"[green]✓[/] Trino at {r.url}, catalog {r.catalog} (`ridecast sql --engine trino`)")


def serve_text(r: ServeResult, zone: str = "TAMPINES") -> Text:
    """Where the service is and how to ask it (the curls of the README's API section)."""
    how = "Ray Serve" if r.mode == "ray" else "plain uvicorn (one process, no Ray)"
    lines = [
        f"[green]✓[/] forecasting service at {r.url} ({how}, pid {r.pid})",
        f"  curl '{r.url}/v1/forecast/{zone}?horizon=60'",
        f"  curl -X POST {r.url}/v1/forecast -H 'content-type: application/json' "
        f"-d '{{\"zones\":[\"{zone}\"],\"horizons\":[15,60]}}'",
        f"  curl '{r.url}/v1/zones/{zone}/history?hours=24'",
        f"  ridecast forecast --zone {zone}          API docs: {r.url}/docs   metrics: {r.url}/metrics",
        "stop it with `ridecast down` (or `make down`)",
    ]
    if r.replica_urls:
        lines.insert(1, f"  each replica also answers itself, past Serve's ingress: {', '.join(r.replica_urls)}")
    return Text.from_markup("\n".join(lines))


def forecast_table(forecasts: list[dict], url: str = "") -> Table:
    """A service's forecasts (the JSON of ``/v1/forecast``), one row per zone and horizon."""
    table = Table(title=f"forecast from {url}" if url else "forecast")
    for col in ("zone", "horizon", "requests", "window (UTC)", "source", "model", "feature age"):
        table.add_column(col)
    for f in forecasts:
        start = str(f.get("target_start", ""))[11:16]
        end = str(f.get("target_end", ""))[11:16]
        model = f"{f.get('model_name') or '-'} v{f['model_version']}" if f.get("model_version") else "-"
        age = f"{float(f.get('feature_age_s', 0)):.0f} s" + (" [yellow](stale)[/]" if f.get("stale") else "")
        source = f.get("source", "")
        if f.get("fallback_reason"):
            source += f" ({f['fallback_reason']})"
        table.add_row(f.get("zone", ""), f"{f.get('horizon_min', '')} min", f"{float(f['predicted_requests']):.1f}",
                      f"{start}–{end}", source, model, age)
    return table


def schedule_table(jobs: tuple[JobSchedule, ...], timezone_name: str) -> Table:
    """Each scheduled job: its cron, command, next time and the outcome of its last recorded run."""
    out = Table(title=f"schedules ({timezone_name})")
    for col in ("job", "cron", "command", "next run", "last run", "outcome"):
        out.add_column(col)
    colours = {"succeeded": "green", "failed": "red", "timeout": "red", "interrupted": "yellow",
               "skipped": "yellow", "running": "cyan"}
    for j in jobs:
        last, outcome = "-", "-"
        if j.last is not None:
            last = j.last.started.isoformat(timespec="seconds")
            outcome = f"[{colours.get(j.last.outcome, 'white')}]{j.last.outcome}[/]"
            if j.last.message:
                outcome += f" ({j.last.message})"
        out.add_row(j.job, j.cron, "ridecast " + " ".join(j.command), j.next_run.isoformat(timespec="seconds"),
                    last, outcome)
    return out


def schedule_text(r: ScheduleResult) -> Group:
    head = Text.from_markup(f"[green]✓[/] scheduler pid {r.pid}; every run is recorded in {r.runs_file}")
    return Group(head, schedule_table(r.jobs, r.timezone))


def down_text(r: DownResult) -> str:
    return f"stopped: {', '.join(r.stopped) or 'nothing was running'}"


def status_view(r: StackStatus) -> Group:
    procs = Table(title="processes")
    for col in ("component", "state", "pid", "health", "log"):
        procs.add_column(col)
    for p in r.processes:
        procs.add_row(p.name, "[green]running[/]" if p.running else "[dim]stopped[/]",
                      str(p.pid) if p.running else "", p.health or "", str(p.log_file))
    tables = Table(title="Iceberg tables")
    for col in ("table", "rows", "snapshots", "last commit (UTC)"):
        tables.add_column(col)
    for t in r.tables:
        tables.add_row(t.identifier, str(t.rows), str(t.snapshots), _fmt_ms(t.last_commit_ms))
    parts = [procs, Text(f"newest checkpoint: {r.checkpoint or 'none'}"), tables]
    if r.schedules:
        scheduling = any(p.name == "scheduler" and p.running for p in r.processes)
        title = str(r.schedules[0].next_run.tzinfo) + ("" if scheduling else "; not running: `ridecast up --schedule`")
        parts.append(schedule_table(r.schedules, title))
    return Group(*parts)


def rayjob_line(state: RayJobState) -> str:
    """One progress line of `ridecast train --on-cluster`: the RayJob's deployment and job status."""
    line = f"RayJob {state.name}: {state.deployment_status or 'Pending'} / job {state.job_status or '-'}"
    return line + (f" — {state.message}" if state.message else "")


def cluster_status_table(r: ClusterStatus) -> Table:
    """`ridecast status --cluster`: the operator resources ridecast runs as, and what their operators report."""
    out = Table(title=f"cluster: namespace {r.namespace}" + (f", context {r.context}" if r.context else ""))
    for col in ("resource", "name", "ready", "state", "detail"):
        out.add_column(col)
    for res in r.resources:
        ready = "[green]yes[/]" if res.ready else "[red]no[/]" if res.found else "[dim]not found[/]"
        out.add_row(res.kind, res.name, ready, res.state, res.detail)
    return out


def maintain_table(r: MaintainReport) -> Table:
    columns = ["table", "files before", "files after", "partitions compacted", "rows rewritten",
               "snapshots removed", "snapshots left"]
    if r.options.orphans:
        columns += ["orphans (dry run)" if r.options.orphans_dry_run else "orphans deleted", "orphan MiB",
                    "orphans too young"]
    out = Table(*columns, header_style="bold")
    for t in r.tables:
        row = [t.identifier, str(t.files_before), str(t.files_after), str(t.partitions_compacted),
               f"{t.rows_rewritten:,}", str(t.snapshots_removed), str(t.snapshots_left)]
        if r.options.orphans:
            row += [str(t.orphans), f"{t.orphan_bytes / 2**20:,.1f}", str(t.orphans_too_young)]
        out.add_row(*row)
    return out


def _delivery_rows(d: Delivery) -> list[tuple[str, object]]:
    if d.produced is not None:
        p = d.produced
        return [("sent", p.sent), ("heartbeats", p.heartbeats), ("partitions", p.partitions),
                ("rate", f"{p.rate:,.0f} events/s")]
    rows: list[tuple[str, object]] = [("written", d.written), ("file", d.path)]
    if d.backfill is not None:
        rows.append(("backfill", d.backfill))
    return rows


def simulation_table(r: SimulationResult, topic: str) -> Table:
    rows: list[tuple[str, object]] = [("window", f"{r.start.isoformat()} + {r.duration}"), ("seed", r.seed)]
    if r.delivery.produced is not None:
        rows.append(("topic", topic))
    rows += _delivery_rows(r.delivery)
    rows += [(f"  {k}", v) for k, v in r.event_types.items()]
    rows.append(("seconds", f"{r.seconds:.1f}"))
    return key_value_table("ridecast simulate", rows)


def ingest_table(r: IngestResult) -> Table:
    rows: list[tuple[str, object]] = [
        ("rows read", r.rows), ("events", r.events), ("rejected rows", r.rejected),
        ("period", r.period or "one event per row"), ("first event", _fmt_ms(r.first_event_ms)),
        ("last event", _fmt_ms(r.last_event_ms)), ("zones", f"{r.zones} -> {r.zones_path}"),
    ]
    rows += [(f"  {k}", v) for k, v in sorted(r.reasons.items())]
    if r.rejects_path:
        rows.append(("rejects", r.rejects_path))
    if r.delivery is not None:
        rows += _delivery_rows(r.delivery)
    if r.dead_lettered:
        rows.append(("dead-lettered by the job", sum(r.dead_lettered.values())))
        rows += [(f"  {k}", v) for k, v in sorted(r.dead_lettered.items())]
    return key_value_table(f"ridecast ingest {r.source.name}", rows)


def train_view(result: TrainResult) -> Group:
    """The backtest table (model vs baselines per horizon), each gate decision, and the timings."""
    t = Table(title=f"Backtest WAPE (MLflow run {result.run_id[:12]})")
    for col in ("horizon", "model", "seasonal naive", "persistence", "hour-of-week mean", "MASE", "gate"):
        t.add_column(col)
    for h, ms in result.metrics.items():
        d = result.decisions[h]
        t.add_row(f"{h} min", f"{ms['model']['wape']:.4f}", f"{ms['seasonal_naive']['wape']:.4f}",
                  f"{ms['persistence']['wape']:.4f}", f"{ms['hour_of_week_mean']['wape']:.4f}",
                  f"{ms['model']['mase']:.3f}", f"v{d.version} -> {d.alias}")
    decisions = [Text.from_markup(f"[bold]{d.model_name}[/] v{d.version}: "
                                  f"{'promoted' if d.promoted else 'not promoted'} — {d.reason}")
                 for d in result.decisions.values()]
    timings = "timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items() if isinstance(v, float))
    return Group(t, *decisions, Text(timings))
