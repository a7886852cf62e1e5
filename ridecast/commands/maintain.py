"""``ridecast maintain``: parse the options, run :func:`ridecast.stack.maintain.maintain`, render its report."""

from __future__ import annotations

import datetime as dt
from typing import Optional

import typer

__all__ = ["register"]


def maintain(
    min_files: int = typer.Option(8, help="compact a partition once it has this many data files"),
    target_file_mb: int = typer.Option(128, help="target size of rewritten files"),
    older_than_hours: float = typer.Option(120.0, help="expire snapshots older than this"),
    retain_last: int = typer.Option(5, help="always keep this many newest snapshots"),
    orphans: bool = typer.Option(True, "--orphans/--no-orphans",
                                 help="after expiry, delete files under each table that no snapshot references"),
    orphan_age_hours: float = typer.Option(
        72.0, min=0.0, help="only delete unreferenced files older than this: younger ones may belong to a commit "
        "in flight; keep it well above the longest commit"),
    orphans_dry_run: bool = typer.Option(False, "--orphans-dry-run", help="report orphan files, delete nothing"),
    table: Optional[list[str]] = typer.Option(None, "--table", "-t", help="only these tables (repeatable)"),
) -> None:
    """Compact, expire snapshots and remove orphan files over every table in iceberg_catalog.tables.TABLES."""
    from rich.console import Console
    from rich.progress import Progress

    from ridecast.stack.maintain import MaintainOptions, UnknownTableError, maintain, resolve_tables, steps_per_table
    from ridecast.views import maintain_table

    console = Console()
    try:
        options = MaintainOptions(
            min_files=min_files, target_file_mb=target_file_mb, older_than=dt.timedelta(hours=older_than_hours),
            retain_last=retain_last, orphans=orphans,
            orphan_age=dt.timedelta(hours=orphan_age_hours), orphans_dry_run=orphans_dry_run)
        idents = resolve_tables(table)
    except UnknownTableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if options.risky_orphan_age:
        console.print(f"[yellow]warning:[/] --orphan-age-hours {orphan_age_hours:g} < 24: a commit in flight "
                      "for longer than that would lose its files")
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("maintaining", total=len(idents) * steps_per_table(options))
            report = maintain(tables=idents, options=options,
                              on_step=lambda what: progress.update(task, description=what, advance=1))
    except Exception as exc:
        typer.echo(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}", err=True)
        raise typer.Exit(2) from None
    console.print(maintain_table(report))
    if report.failed:
        typer.echo(f"warning: {len(report.failed)} orphan file(s) could not be deleted, e.g. {report.failed[0]}",
                   err=True)


def register(app: typer.Typer) -> None:
    app.command("maintain")(maintain)
