"""``ridecast sql`` and ``ridecast tables``: Trino-dialect SQL on whichever engine settings select.

Errors are one line on stderr with exit code 2 (no traceback): a query's failure is the user's input,
not a crash.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def _fail(exc: BaseException) -> None:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def sql(
    query: str = typer.Argument(..., help="Trino-dialect SQL, e.g. \"SELECT * FROM gold.zone_features LIMIT 5\""),
    fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json (array) | jsonl (one object a line)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here instead of stdout"),
    engine: str = typer.Option("auto", "--engine", "-e", help="auto | embedded | trino"),
    max_rows: int = typer.Option(1000, "--max-rows", help="rows shown by --format table"),
) -> None:
    """Run one query; `auto` uses Trino when sql.trino_url is set, else embedded DuckDB."""
    from ridecast.config import get_settings
    from ridecast.sql import FORMATS, rich_table, run_sql, summary_line, write_result

    if fmt not in FORMATS:
        _fail(ValueError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}"))
    try:
        result = run_sql(query, get_settings(), engine=engine)
    except Exception as exc:  # every failure becomes one line + exit 2
        _fail(exc)
        return
    if fmt == "table":
        from rich.console import Console

        if output is not None:
            with output.open("w", encoding="utf-8") as fh:
                Console(file=fh, width=200).print(rich_table(result, max_rows))
        else:
            console = Console()
            console.print(rich_table(result, max_rows))
            console.print(f"[dim]{summary_line(result)}[/dim]")
        return
    try:
        if output is not None:
            with output.open("w", encoding="utf-8", newline="") as fh:
                write_result(result, fmt, fh)
        else:
            write_result(result, fmt, sys.stdout)
    except OSError as exc:
        _fail(exc)


def tables() -> None:
    """List every table with row count, data files, snapshot count and last commit (from metadata only)."""
    from rich.console import Console
    from rich.table import Table

    from ridecast.config import get_settings
    from ridecast.sql import table_stats

    try:
        stats = table_stats(get_settings())
    except Exception as exc:
        _fail(exc)
        return
    out = Table("table", "rows", "data files", "snapshots", "last commit (UTC)", "last operation", header_style="bold")
    for s in stats:
        out.add_row(s.identifier, f"{s.rows:,}", str(s.data_files), str(s.snapshots),
                    s.last_commit.strftime("%Y-%m-%d %H:%M:%S") if s.last_commit else "-", s.last_operation or "-")
    Console().print(out)


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
    app.command("tables")(tables)
