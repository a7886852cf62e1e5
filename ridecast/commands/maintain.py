"""``ridecast maintain``: compact small files, then expire old snapshots, for every ridecast table.

Order matters: :func:`before_expire` runs before any snapshot of a table expires, because it deletes
staging files the streaming committer already committed, and it finds them through the
``ridecast.source-files`` property of snapshots that expiry would remove.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from rich.console import Console

    from ridecast.config import Settings

__all__ = ["before_expire", "register"]


def before_expire(settings: "Settings", table: "Table", console: "Console | None" = None) -> bool:
    """Hook run before a table's snapshots expire: delete staging files already committed.

    Delegates to ``ridecast.pipeline.cleanup_committed_staging(settings)``; skipped (with a note) only if
    the module ``ridecast.pipeline`` does not exist yet. Any other error propagates, so expiry never runs
    after a failed cleanup. Returns whether the cleanup ran.
    """
    try:
        pipeline = importlib.import_module("ridecast.pipeline")
    except ModuleNotFoundError as exc:
        if exc.name != "ridecast.pipeline":
            raise  # the module exists but one of its imports is missing: a real error
        if console is not None:
            console.print("[yellow]note:[/yellow] ridecast.pipeline not present yet; staging cleanup skipped")
        return False
    pipeline.cleanup_committed_staging(settings)
    return True


def maintain(
    min_files: int = typer.Option(8, help="compact a partition once it has this many data files"),
    target_file_mb: int = typer.Option(128, help="target size of rewritten files"),
    older_than_hours: float = typer.Option(120.0, help="expire snapshots older than this"),
    retain_last: int = typer.Option(5, help="always keep this many newest snapshots"),
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
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("maintaining", total=len(idents) * 2)
            for ident in idents:
                tbl = load_table(catalog, ident)
                progress.update(task, description=f"compacting {ident}")
                comp = compact(tbl, min_files=min_files, target_file_mb=target_file_mb)
                progress.advance(task)
                progress.update(task, description=f"expiring {ident}")
                before_expire(settings, tbl, console)  # must run BEFORE snapshots expire
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
