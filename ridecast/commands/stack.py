"""``ridecast up | down | status``: the embedded stack's lifecycle."""

from __future__ import annotations

import datetime as dt

import typer

__all__ = ["register"]


def up(no_job: bool = typer.Option(False, "--no-job", help="start only the broker and the tables")) -> None:
    """Start the broker, create topics and tables, start the feature job (it writes the Iceberg tables)."""
    from rich.console import Console

    from iceberg_catalog.catalog import ensure_tables, open_catalog
    from ridecast.config import get_settings
    from ridecast.pipeline import start_stream
    from ridecast.stack.broker import ensure_topics, start_broker

    console = Console()
    s = get_settings()
    with console.status("starting the embedded stack…"):
        servers = start_broker(s)
        ensure_topics(s, servers)
        ensure_tables(open_catalog(s))
        console.print(f"[green]✓[/] Kafka at {servers}; topics {s.kafka.events_topic}, {s.kafka.features_topic}")
        console.print(f"[green]✓[/] Iceberg catalog {s.catalog_uri}")
        if not no_job:
            rec = start_stream(s)
            restored = rec.get("restored_from") or "no checkpoint (fresh start)"
            console.print(f"[green]✓[/] feature job pid {rec['pid']}, restored from {restored}")
    console.print(f"state and logs in {s.state_dir}")


def down() -> None:
    """Stop everything `up` started (checkpoints and tables stay)."""
    from rich.console import Console

    from ridecast.config import get_settings
    from ridecast.pipeline import stop_stream
    from ridecast.stack.broker import stop_broker

    s = get_settings()
    stopped = stop_stream(s)
    if stop_broker(s):
        stopped.append("broker")
    Console().print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def status() -> None:
    """What runs, the newest checkpoint, and each table's rows and last commit."""
    from rich.console import Console
    from rich.table import Table

    from iceberg_catalog.catalog import ensure_tables, open_catalog
    from ridecast.config import get_settings
    from ridecast.pipeline import feature_job_process, latest_checkpoint
    from ridecast.stack.broker import broker_process

    s = get_settings()
    console = Console()
    procs = Table(title="processes")
    for col in ("component", "state", "pid", "log"):
        procs.add_column(col)
    for proc in (broker_process(s), feature_job_process(s)):
        rec = proc.info()
        procs.add_row(proc.name, "[green]running[/]" if rec else "[dim]stopped[/]", str(rec["pid"]) if rec else "",
                      str(proc.log_file))
    console.print(procs)
    chk = latest_checkpoint(s.checkpoint_dir)
    console.print(f"newest checkpoint: {chk or 'none'}")
    tables = Table(title="Iceberg tables")
    for col in ("table", "rows", "snapshots", "last commit (UTC)"):
        tables.add_column(col)
    for ident, table in ensure_tables(open_catalog(s)).items():
        snap = table.current_snapshot()
        rows = snap.summary.additional_properties.get("total-records", "0") if snap and snap.summary else "0"
        when = f"{dt.datetime.fromtimestamp(snap.timestamp_ms / 1000, dt.timezone.utc):%Y-%m-%d %H:%M:%S}" if snap else ""
        tables.add_row(ident, rows, str(len(table.metadata.snapshots)), when)
    console.print(tables)


def demo(
    history_days: int = typer.Option(28, min=0, help="days of simulated history to backfill"),
    seed: int = typer.Option(42, help="simulation seed"),
    scale: float = typer.Option(1.0, min=0.01, help="demand multiplier (1.0 ≈ 50k requests a weekday)"),
    speedup: float = typer.Option(1440.0, min=1.0, help="live day pacing (1440 = one day per minute)"),
    train: bool = typer.Option(True, help="also train, register and forecast"),
) -> None:
    """Run the whole pipeline end to end on embedded defaults and show the results."""
    from ridecast.demo import run_demo

    run_demo(history_days=history_days, seed=seed, scale=scale, speedup=speedup, train=train)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(demo)
