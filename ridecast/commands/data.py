"""Data commands: ``ridecast simulate`` (a synthetic Singapore) and ``ridecast ingest`` (your own file).

Both end in the same two places, so the rest of the platform cannot tell them apart: the events topic
(live, optionally paced) or a JSONL file handed to ``ridecast.pipeline.backfill`` (history in batch).
Heavy imports live inside the command bodies so ``ridecast --help`` stays fast.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


class Target(str, Enum):
    kafka = "kafka"
    backfill = "backfill"


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _table(title: str, rows: list[tuple[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


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
) -> None:
    """Simulate Singapore ride-hailing trip events and send them to Kafka (default), a file, or a backfill."""
    import collections
    import time

    from ridecast.config import get_settings
    from ridecast.demand import SGT
    from ridecast.simulate import simulate_events, write_jsonl

    if hours is not None and days is not None:
        raise typer.BadParameter("give --hours or --days, not both")
    if out is not None and backfill:
        raise typer.BadParameter("give --out or --backfill, not both")
    duration = timedelta(hours=hours) if hours is not None else timedelta(days=days if days is not None else 1)
    if duration <= timedelta(0):
        raise typer.BadParameter("duration must be positive")
    if start is None:
        # end the run (and the outcomes of its last requests) before now: the pipeline rejects future events
        begin = datetime.now(SGT) - duration - timedelta(hours=2)
        begin = begin.replace(minute=0, second=0, microsecond=0)
    else:
        begin = datetime.fromisoformat(start)
        begin = begin.replace(tzinfo=SGT) if begin.tzinfo is None else begin
    s = get_settings()
    types: collections.Counter[str] = collections.Counter()

    def counted():
        for event in simulate_events(begin, duration, seed=seed, scale=scale):
            types[event["event_type"]] += 1
            yield event

    rows: list[tuple[str, object]] = [("window", f"{begin.isoformat()} + {duration}"), ("seed", seed)]
    t0 = time.monotonic()
    if out is not None or backfill:
        path = out or s.state_dir / "backfill" / f"sim-{seed}-{begin:%Y%m%dT%H%M}-{int(duration.total_seconds())}s.jsonl"
        n = write_jsonl(counted(), path)
        rows += [("written", n), ("file", path)]
        if backfill:
            from ridecast.pipeline import backfill as run_backfill

            result = run_backfill(path, settings=s)
            rows.append(("backfill", str(result)))
    else:
        from ridecast.producer import produce

        stats = produce(counted(), s, speedup=speedup, progress=progress)
        rows += [("topic", s.kafka.events_topic), ("sent", stats.sent), ("heartbeats", stats.heartbeats),
                 ("partitions", stats.partitions), ("rate", f"{stats.rate:,.0f} events/s")]
    seconds = time.monotonic() - t0
    rows += [(f"  {k}", v) for k, v in sorted(types.items())]
    rows.append(("seconds", f"{seconds:.1f}"))
    _table("ridecast simulate", rows)


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
    to: Target = typer.Option(Target.kafka, help="kafka (events topic) or backfill (batch into Iceberg)"),
    speedup: Optional[float] = typer.Option(None, min=0.0, help="kafka: pace by event time"),
    max_dead_letter_share: float = typer.Option(
        0.5, min=0.0, max=1.0, help="backfill: fail when more than this share of the events is dead-lettered"),
    progress: bool = typer.Option(True, help="progress bar"),
) -> None:
    """Bring your own data: map a CSV/Parquet file of events or counts per place per time to events."""
    from ridecast.config import get_settings
    from ridecast.ingest import IngestError, ingest as run_ingest

    s = get_settings()
    try:
        r = run_ingest(file, time_col=time_col, zone_col=zone_col, value_col=value_col, type_col=type_col,
                       time_format=time_format, tz=tz, period=period, zones_out=zones_out, to=to.value,
                       settings=s, speedup=speedup, progress=progress,
                       max_dead_letter_share=max_dead_letter_share)
    except IngestError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    rows: list[tuple[str, object]] = [
        ("rows read", r.rows), ("events", r.events), ("rejected rows", r.rejected),
        ("period", r.period or "one event per row"), ("first event", _fmt_ms(r.first_event_ms)),
        ("last event", _fmt_ms(r.last_event_ms)), ("zones", f"{r.zones} -> {r.zones_path}"),
    ]
    rows += [(f"  {k}", v) for k, v in sorted(r.reasons.items())]
    if r.rejects_path:
        rows.append(("rejects", r.rejects_path))
    if r.produce_stats is not None:
        rows += [("sent", r.produce_stats.sent), ("heartbeats", r.produce_stats.heartbeats),
                 ("rate", f"{r.produce_stats.rate:,.0f} events/s")]
    if r.events_path is not None:
        rows += [("events file", r.events_path), ("backfill", r.backfill_result),
                 ("dead-lettered by the job", sum(r.dead_lettered.values()))]
        rows += [(f"  {k}", v) for k, v in r.dead_lettered.items()]
    _table(f"ridecast ingest {file.name}", rows)
    typer.echo(f"{r.rejected} row(s) rejected" + (f", see {r.rejects_path}" if r.rejects_path else ""))
    if r.dead_lettered:
        typer.secho(f"{sum(r.dead_lettered.values())} event(s) dead-lettered by the feature job, see "
                    f"ops.dead_letters WHERE source = '{r.backfill_result.source}'", fg="yellow")
    typer.echo(f"Use this zone list everywhere: export RIDECAST_ZONES_FILE={r.zones_path}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("ingest")(ingest)
