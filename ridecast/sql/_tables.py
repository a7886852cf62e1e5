"""What is in the lakehouse, read from snapshot metadata only (no data scan), for ``ridecast tables``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["TableStats", "table_stats"]


@dataclass(frozen=True)
class TableStats:
    identifier: str
    rows: int
    data_files: int
    snapshots: int
    last_commit: dt.datetime | None
    last_operation: str | None


def table_stats(settings: "Settings") -> list[TableStats]:
    """Every table in the catalog with row/file totals from its current snapshot's summary."""
    from iceberg_catalog.catalog import open_catalog

    catalog = open_catalog(settings)
    out: list[TableStats] = []
    for ns in sorted(catalog.list_namespaces()):
        for ident in sorted(catalog.list_tables(ns)):
            table = catalog.load_table(ident)
            snap = table.current_snapshot()
            summary = snap.summary if snap and snap.summary else None
            out.append(
                TableStats(
                    identifier=".".join(ident),
                    rows=int(summary.get("total-records", 0)) if summary else 0,
                    data_files=int(summary.get("total-data-files", 0)) if summary else 0,
                    snapshots=len(table.snapshots()),
                    last_commit=dt.datetime.fromtimestamp(snap.timestamp_ms / 1000, dt.timezone.utc) if snap else None,
                    last_operation=summary.operation.value if summary else None,
                )
            )
    return out
