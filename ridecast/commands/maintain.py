"""``ridecast maintain``: compact small files, expire old snapshots, then remove orphan files, for every
ridecast table.

Compaction is this command's, not the feature job's: Iceberg's Flink sink commits one small file per table and
checkpoint, and its own post-commit compaction (``flink-maintenance.rewrite.enabled``) is still marked
experimental in Iceberg 1.11. Order matters: orphan removal comes last: compaction and expiry are what leave
data files, manifests and manifest lists that no snapshot references any more; it deletes only those older than ``--orphan-age-hours`` (commits in flight).
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
    from rich.table import Table as RichTable

    from iceberg_catalog.catalog import load_table, open_catalog
    from iceberg_catalog.maintenance import compact, expire_snapshots, remove_orphan_files
    from iceberg_catalog.tables import TABLES
    from ridecast.config import get_settings

    console = Console()
    settings = get_settings()
    idents = list(table) if table else list(TABLES)
    unknown = [i for i in idents if i not in TABLES]
    if unknown:
        typer.echo(f"error: unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLES)}", err=True)
        raise typer.Exit(2)
    columns = ["table", "files before", "files after", "partitions compacted", "rows rewritten",
               "snapshots removed", "snapshots left"]
    if orphans:
        columns += ["orphans (dry run)" if orphans_dry_run else "orphans deleted", "orphan MiB", "orphans too young"]
    summary = RichTable(*columns, header_style="bold")
    if orphans and orphan_age_hours < 24 and not orphans_dry_run:
        console.print(f"[yellow]warning:[/] --orphan-age-hours {orphan_age_hours:g} < 24: a commit in flight "
                      "for longer than that would lose its files")
    failed: list[str] = []
    steps = 3 if orphans else 2
    try:
        catalog = open_catalog(settings)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("maintaining", total=len(idents) * steps)
            for ident in idents:
                tbl = load_table(catalog, ident)
                progress.update(task, description=f"compacting {ident}")
                comp = compact(tbl, min_files=min_files, target_file_mb=target_file_mb)
                progress.advance(task)
                progress.update(task, description=f"expiring {ident}")
                exp = expire_snapshots(tbl, older_than=dt.timedelta(hours=older_than_hours), retain_last=retain_last)
                progress.advance(task)
                row = [ident, str(comp.files_before), str(comp.files_after), str(len(comp.partitions)),
                       f"{comp.rows_rewritten:,}", str(len(exp.removed)), str(exp.snapshots_after)]
                if orphans:  # after expiry: that is what leaves files unreferenced
                    progress.update(task, description=f"removing orphan files of {ident}")
                    orph = remove_orphan_files(tbl, older_than=dt.timedelta(hours=orphan_age_hours),
                                               dry_run=orphans_dry_run)
                    progress.advance(task)
                    failed += orph.failed
                    n = len(orph.orphans) if orphans_dry_run else orph.deleted
                    row += [str(n), f"{orph.orphan_bytes / 2**20:,.1f}", str(orph.young_kept)]
                summary.add_row(*row)
    except Exception as exc:
        typer.echo(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}", err=True)
        raise typer.Exit(2) from None
    console.print(summary)
    if failed:
        typer.echo(f"warning: {len(failed)} orphan file(s) could not be deleted, e.g. {failed[0]}", err=True)


def register(app: typer.Typer) -> None:
    app.command("maintain")(maintain)
