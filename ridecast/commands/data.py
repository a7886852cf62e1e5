"""Data commands: ``ridecast simulate`` (a synthetic Singapore) and ``ridecast ingest`` (your own file).

Both end in :func:`ridecast.sources.deliver.deliver`, so the rest of the platform cannot tell them apart: the
events topic (live, optionally paced), a JSONL file, or a backfill (history in batch). The commands parse and
render; the work is in :mod:`ridecast.sources`. Heavy imports live inside the command bodies so
``ridecast --help`` stays fast.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import typer

from ridecast.sources.deliver import Target

__all__ = ["register"]


def simulate(
    start: Optional[str] = typer.Option(
        None, help="ISO start; naive = Singapore time. Default: the run (with trip outcomes) ends before now."
    ),
    hours: Optional[float] = typer.Option(None, help="duration in hours"),
    days: Optional[float] = typer.Option(None, help="duration in days (default 1 if --hours is not given)"),
    seed: int = typer.Option(0, min=0, help="same seed, same events"),
    scale: float = typer.Option(1.0, min=0.0, help="demand multiplier (1.0 ~ 50k requests/weekday)"),
    speedup: Optional[float] = typer.Option(
        None, min=0.0, help="pace by event time (720 = 1 h per 5 s); omit to send as fast as possible"
    ),
    out: Optional[Path] = typer.Option(None, help="write JSON lines here instead of producing to Kafka"),
    backfill: bool = typer.Option(False, "--backfill", help="write JSONL under state_dir/backfill and backfill it"),
    progress: bool = typer.Option(True, help="progress bar"),
    live: bool = typer.Option(
        False, "--live", help="in the background: each event after --start (default now) sent to Kafka as it "
        "happens, until `ridecast down`"
    ),
) -> None:
    """Simulate Singapore ride-hailing trip events and send them to Kafka (default), a file, or a backfill."""
    from rich.console import Console

    from ridecast.config import get_settings
    from ridecast.sources.demand import SGT
    from ridecast.sources.simulate import default_start, run_simulation
    from ridecast.views import simulation_table

    if live:
        if any(v is not None for v in (hours, days, speedup, out)) or backfill:
            raise typer.BadParameter("--live sends to Kafka as the clock goes: it takes no --hours, --days, "
                                     "--speedup, --out or --backfill")
        _start_live(start, seed, scale)
        return
    if hours is not None and days is not None:
        raise typer.BadParameter("give --hours or --days, not both")
    if out is not None and backfill:
        raise typer.BadParameter("give --out or --backfill, not both")
    duration = timedelta(hours=hours) if hours is not None else timedelta(days=days if days is not None else 1)
    if duration <= timedelta(0):
        raise typer.BadParameter("duration must be positive")
    if start is None:
        begin = default_start(duration)
    else:
        begin = datetime.fromisoformat(start)
        begin = begin.replace(tzinfo=SGT) if begin.tzinfo is None else begin
    target = Target.backfill if backfill else Target.file if out is not None else Target.kafka
    s = get_settings()
    result = run_simulation(begin, duration, seed=seed, scale=scale, target=target, path=out, settings=s,
                            speedup=speedup, progress=progress)
    Console().print(simulation_table(result, s.kafka.events_topic))


def _start_live(start: Optional[str], seed: int, scale: float) -> None:
    from rich.console import Console

    from ridecast.config import get_settings
    from ridecast.sources.demand import SGT
    from ridecast.stack.traffic import start_traffic, traffic_process

    since = datetime.now(timezone.utc) if start is None else datetime.fromisoformat(start)
    since = since.replace(tzinfo=SGT) if since.tzinfo is None else since
    s = get_settings()
    rec = start_traffic(s, since=since, seed=seed, scale=scale)
    Console().print(f"live traffic (pid {rec['pid']}): simulated events after {rec['since']} (seed {rec['seed']}, "
                    f"scale {rec['scale']:g}) sent as they happen; log {traffic_process(s).log_file}; "
                    "stop with `ridecast down`")


def ingest(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or Parquet file"),
    time_col: str = typer.Option(..., help="column with the event time (ISO 8601, epoch s/ms, timestamp)"),
    zone_col: str = typer.Option(..., help="column with the place (zone, store, station)"),
    value_col: Optional[str] = typer.Option(None, help="column with a count per row (expanded into events)"),
    type_col: Optional[str] = typer.Option(None, help="column with requested|completed|cancelled"),
    time_format: Optional[str] = typer.Option(None, help="epoch_s | epoch_ms | iso | a strftime pattern"),
    tz: Optional[str] = typer.Option(None, help="IANA zone of naive times (default UTC)"),
    period: Optional[str] = typer.Option(None, help="period a count covers, e.g. 1h (default: inferred)"),
    zones_out: Optional[Path] = typer.Option(None, help="zone list CSV (default state_dir/zones/<stem>.csv)"),
    to: Target = typer.Option(Target.kafka, help="kafka (events topic), backfill (batch into Iceberg) or file "
                              "(JSONL under state_dir/backfill)"),
    speedup: Optional[float] = typer.Option(None, min=0.0, help="kafka: pace by event time"),
    max_dead_letter_share: float = typer.Option(
        0.5, min=0.0, max=1.0, help="backfill: fail when more than this share of the events is dead-lettered"),
    progress: bool = typer.Option(True, help="progress bar"),
) -> None:
    """Bring your own data: map a CSV/Parquet file of events or counts per place per time to events."""
    from rich.console import Console

    from ridecast.config import get_settings
    from ridecast.sources.ingest import IngestError
    from ridecast.sources.ingest import ingest as run_ingest
    from ridecast.views import ingest_table

    try:
        r = run_ingest(file, time_col=time_col, zone_col=zone_col, value_col=value_col, type_col=type_col,
                       time_format=time_format, tz=tz, period=period, zones_out=zones_out, to=to,
                       settings=get_settings(), speedup=speedup, progress=progress,
                       max_dead_letter_share=max_dead_letter_share)
    except IngestError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    Console().print(ingest_table(r))
    typer.echo(f"{r.rejected} row(s) rejected" + (f", see {r.rejects_path}" if r.rejects_path else ""))
    if r.dead_lettered:
        typer.secho(f"{sum(r.dead_lettered.values())} event(s) dead-lettered by the feature job, see "
                    f"ops.dead_letters WHERE source = '{r.delivery.backfill.source}'", fg="yellow")
    typer.echo(f"Use this zone list everywhere: export RIDECAST_ZONES_FILE={r.zones_path}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("ingest")(ingest)
