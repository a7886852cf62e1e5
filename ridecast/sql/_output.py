"""Rendering results: a Rich table for people, CSV and JSON (array or lines) for programs.

Values are converted once (:func:`jsonable`) so CSV and JSON agree: timestamps as ISO-8601, maps as
objects, decimals as numbers, bytes as hex.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
from collections.abc import Iterator
from typing import IO, Any, Literal

from ridecast.sql._result import QueryResult

__all__ = ["FORMATS", "OutputFormat", "jsonable", "rich_table", "summary_line", "write_result"]

OutputFormat = Literal["table", "csv", "json", "jsonl"]
FORMATS: tuple[str, ...] = ("table", "csv", "json", "jsonl")


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {str(k): jsonable(v) for k, v in value}  # Arrow maps come back as (key, value) pairs
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def _records(result: QueryResult) -> Iterator[dict[str, Any]]:
    for batch in result.table.to_batches():
        for row in batch.to_pylist():
            yield {k: jsonable(v) for k, v in row.items()}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def rich_table(result: QueryResult, max_rows: int | None = None):
    from rich.table import Table

    table = Table(*result.columns, show_lines=False, header_style="bold")
    for i, rec in enumerate(_records(result)):
        if max_rows is not None and i >= max_rows:
            break
        table.add_row(*(_cell(v) if v is not None else "[dim]NULL[/dim]" for v in rec.values()))
    return table


def summary_line(result: QueryResult) -> str:
    return f"{result.num_rows} row(s) · {result.engine} · {result.elapsed_s * 1000:.0f} ms"



def write_result(result: QueryResult, fmt: OutputFormat | str, out: IO[str]) -> None:
    """Write ``result`` to a text stream in a machine format (``csv``, ``json`` array, ``jsonl`` lines)."""
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(result.columns)
        for rec in _records(result):
            w.writerow([_cell(v) for v in rec.values()])
    elif fmt == "json":
        out.write("[")
        for i, rec in enumerate(_records(result)):
            out.write(("," if i else "") + "\n" + json.dumps(rec, ensure_ascii=False))
        out.write("\n]\n" if result.num_rows else "]\n")
    elif fmt == "jsonl":
        for rec in _records(result):
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
