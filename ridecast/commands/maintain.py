"""``ridecast maintain``: compact small files, then expire old snapshots, for every ridecast table.

Order matters: staging files the committer already committed are deleted *before* any snapshot expires,
because they are recognised through the ``ridecast.source-files`` property of the snapshots that expiry removes.
"""

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
    staging_age_hours: float = typer.Option(1.0, help="delete committed staging files older than this"),
    table: Optional[list[str]] = typer.Option(None, "--table", "-t", help="only these tables (repeatable)"),
) -> None:
    """Compact and expire snapshots over every table in iceberg_catalog.tables.TABLES."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table as RichTable

    from iceberg_catalog.catalog import load_table, open_catalog
    from iceberg_catalog.maintenance import compact, expire_snapshots
    from iceberg_catalog.tables import TABLES
    from ridecast.config import get_settings
    from ridecast.pipeline import cleanup_committed_staging

    console = Console()
    settings = get_settings()
    idents = list(table) if table else list(TABLES)
    unknown = [i for i in idents if i not in TABLES]
    if unknown:
        typer.echo(f"error: unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLES)}", err=True)
        raise typer.Exit(2)
    summary = RichTable("table", "files before", "files after", "partitions compacted", "rows rewritten",
                        "snapshots removed", "snapshots left", header_style="bold")
    try:
        catalog = open_catalog(settings)
        # must run BEFORE any snapshot expires (see the module docstring)
        removed = cleanup_committed_staging(settings, min_age_s=staging_age_hours * 3600)
        console.print(f"deleted {removed} committed staging files")
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("maintaining", total=len(idents) * 2)
            for ident in idents:
                tbl = load_table(catalog, ident)
                progress.update(task, description=f"compacting {ident}")
                comp = compact(tbl, min_files=min_files, target_file_mb=target_file_mb)
                progress.advance(task)
                progress.update(task, description=f"expiring {ident}")
                exp = expire_snapshots(tbl, older_than=dt.timedelta(hours=older_than_hours), retain_last=retain_last)
                progress.advance(task)
                summary.add_row(ident, str(comp.files_before), str(comp.files_after), str(len(comp.partitions)),
                                f"{comp.rows_rewritten:,}", str(len(exp.removed)), str(exp.snapshots_after))
    except Exception as exc:
        typer.echo(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}", err=True)
        raise typer.Exit(2) from None
    console.print(summary)


def register(app: typer.Typer) -> None:
    app.command("maintain")(maintain)
