"""Exactly-once from Flink's file sinks into Iceberg: the single committer.

The feature job cannot write Iceberg itself here (no iceberg-flink-runtime; pyiceberg cannot live in the
Flink environment), so it mirrors Iceberg's own Flink sink: Flink *writers* finalize part files only when a
checkpoint completes, and this *committer* appends each finalized file once. Each append records the names of
the files it consumed in the same snapshot's summary (``ridecast.source-files``), so the data and the record
of having consumed it commit atomically: a crash before the catalog commit leaves only orphan Parquet files,
a crash after it is seen on restart by reading the snapshots. Nothing is lost, nothing is appended twice.

Staged files are deleted only by :func:`cleanup_committed` (``ridecast maintain``), and only once committed
and old, *before* snapshots expire — the expiring snapshots are what remember them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from pyiceberg.exceptions import CommitFailedException

from iceberg_catalog.catalog import load_table, open_catalog
from iceberg_catalog.tables import TABLES

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from ridecast.config import Settings

__all__ = ["STAGED_TABLES", "SUMMARY_KEY", "Committer", "CommitStats", "backfill_root", "cleanup_committed",
           "committed_names", "pending_files", "stream_root"]

log = logging.getLogger("ridecast.committer")

SUMMARY_KEY = "ridecast.source-files"
# staging folder written by the Flink job -> Iceberg table; silver last, so a finished silver commit
# means every other table of the same batch was committed before it.
STAGED_TABLES: dict[str, str] = {
    "bronze": "bronze.trip_events",
    "dead_letters": "ops.dead_letters",
    "gold": "gold.zone_features",
    "silver": "silver.trip_events",
}
MAX_FILES_PER_COMMIT = 500


@dataclass
class CommitStats:
    files: int = 0
    rows: int = 0
    commits: int = 0
    retries: int = 0


def committed_names(table: "Table") -> set[str]:
    """Every staged file any retained snapshot of ``table`` consumed."""
    names: set[str] = set()
    for snap in table.metadata.snapshots:
        summary = snap.summary
        raw = summary.additional_properties.get(SUMMARY_KEY) if summary is not None else None
        if raw:
            names.update(json.loads(raw))
    return names


def stream_root(settings: "Settings") -> Path:
    """The streaming job's staging root. This module owns the staging layout: everyone else asks it."""
    return settings.staging_dir / "stream"


def backfill_root(settings: "Settings", backfill_id: str) -> Path:
    """One backfill's staging root, next to the stream's (``cleanup_committed`` walks both)."""
    return settings.staging_dir / f"backfill-{backfill_id}"


def pending_files(settings: "Settings", ident: str, table: "Table") -> list[Path] | None:
    """Finalized stream files of ``ident`` no snapshot has consumed yet; None if nothing stages that table."""
    folder = next((f for f, i in STAGED_TABLES.items() if i == ident), None)
    if folder is None:
        return None
    done = committed_names(table)
    staged = finalized_files(stream_root(settings) / folder)
    return [p for p in staged if p.relative_to(settings.staging_dir).as_posix() not in done]


def finalized_files(folder: Path) -> list[Path]:
    """Part files Flink has finalized. Dot-files are in progress (or a batch job's staging) and not ours."""
    if not folder.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        out.extend(Path(dirpath, f) for f in filenames if not f.startswith((".", "_")))
    return sorted(out, key=lambda p: (p.stat().st_mtime, p.name))


def _read_staged(paths: Iterable[Path], table: "Table") -> pa.Table:
    """Read Flink's JSON lines into the table's Arrow schema (ISO-8601 timestamps → timestamptz)."""
    target = table.schema().as_arrow()
    json_schema = pa.schema(
        [pa.field(f.name, pa.string() if pa.types.is_timestamp(f.type) else f.type) for f in target]
    )
    parts = []
    for path in paths:
        if path.stat().st_size == 0:
            continue
        t = pajson.read_json(
            path,
            parse_options=pajson.ParseOptions(explicit_schema=json_schema, unexpected_field_behavior="ignore"),
        )
        parts.append(t)
    if not parts:
        return target.empty_table()
    raw = pa.concat_tables(parts)
    cols = []
    for f in target:
        col = raw.column(f.name) if f.name in raw.column_names else pa.nulls(raw.num_rows, f.type)
        if pa.types.is_timestamp(f.type) and not pa.types.is_timestamp(col.type):
            col = pc.cast(pc.cast(col, pa.timestamp("ms", tz="UTC")), f.type)  # ISO-8601 with 'Z'
        else:
            col = pc.cast(col, f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=target)


def _sorted(df: pa.Table, identifier: str) -> pa.Table:
    """Rows in the table's sort order: per-zone scans then prune row groups."""
    tdef = TABLES[identifier]
    names = [tdef.schema.find_field(sf.source_id).name for sf in tdef.sort_order.fields]
    return df.sort_by([(n, "ascending") for n in names]) if names and df.num_rows else df


@dataclass
class Committer:
    """Commits finalized files under ``root`` (one staging root per Flink job: the stream, or a backfill)."""

    settings: "Settings"
    root: Path
    properties: dict[str, str] = field(default_factory=dict)  # extra snapshot summary properties

    def __post_init__(self) -> None:
        self.catalog = open_catalog(self.settings)
        self._committed: dict[str, set[str]] = {}
        self._empty: set[str] = set()
        self.stats: dict[str, CommitStats] = {ident: CommitStats() for ident in STAGED_TABLES.values()}

    def _name(self, path: Path) -> str:
        # relative to the staging dir, so a stream file and a backfill file can never collide
        return path.relative_to(self.settings.staging_dir).as_posix()

    def pending(self, folder: str, table: "Table") -> list[Path]:
        ident = STAGED_TABLES[folder]
        if ident not in self._committed:
            self._committed[ident] = committed_names(table)
        done = self._committed[ident]
        return [p for p in finalized_files(self.root / folder) if self._name(p) not in done
                and self._name(p) not in self._empty]

    def commit_pending(self) -> dict[str, CommitStats]:
        """One pass over every staged table; returns what this pass committed."""
        done: dict[str, CommitStats] = {}
        for folder, ident in STAGED_TABLES.items():
            table = load_table(self.catalog, ident)
            files = self.pending(folder, table)[:MAX_FILES_PER_COMMIT]
            if not files:
                continue
            stats = done.setdefault(ident, CommitStats())
            df = _read_staged(files, table)
            if df.num_rows == 0:
                self._empty.update(self._name(p) for p in files)
                continue
            names = [self._name(p) for p in files]
            props = {SUMMARY_KEY: json.dumps(names), "ridecast.committer": "iceberg_catalog.committer",
                     **self.properties}
            for attempt in range(10):
                try:
                    table.append(_sorted(df, ident), snapshot_properties=props)
                    break
                except CommitFailedException:
                    # someone else committed (maintenance, a backfill): reload and re-check before retrying
                    stats.retries += 1
                    table = self.catalog.load_table(ident)
                    if set(names) & committed_names(table):
                        raise RuntimeError(f"{ident}: files committed by another committer: {names[:3]}…") from None
                    time.sleep(min(0.1 * 2**attempt, 2.0))
            else:
                raise RuntimeError(f"{ident}: gave up after repeated commit conflicts")
            self._committed[ident].update(names)
            stats.files += len(files)
            stats.rows += df.num_rows
            stats.commits += 1
            total = self.stats[ident]
            total.files, total.rows, total.commits = (total.files + len(files), total.rows + df.num_rows,
                                                      total.commits + 1)
            log.info("committed %s: %d files, %d rows", ident, len(files), df.num_rows)
        return done

    def drain(self) -> dict[str, CommitStats]:
        """Commit until nothing is pending (a backfill's bounded output)."""
        total: dict[str, CommitStats] = {}
        while True:
            done = self.commit_pending()
            if not done:
                return total
            for ident, s in done.items():
                t = total.setdefault(ident, CommitStats())
                t.files, t.rows, t.commits = t.files + s.files, t.rows + s.rows, t.commits + s.commits

    def run(self, stop: threading.Event | None = None) -> None:
        """Poll forever (the streaming committer process)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.commit_pending()
            except Exception:  # a bad pass must not kill the committer; the next pass retries
                log.exception("commit pass failed; retrying")
            stop.wait(self.settings.commit_interval_s)


def cleanup_committed(settings: "Settings", *, min_age_s: float = 3600.0) -> int:
    """Delete staged files already committed (and older than ``min_age_s``). Run BEFORE expiring snapshots."""
    catalog = open_catalog(settings)
    removed = 0
    now = time.time()
    for folder, ident in STAGED_TABLES.items():
        table = load_table(catalog, ident)
        done = committed_names(table)
        for root in [stream_root(settings), *sorted(settings.staging_dir.glob("backfill-*"))]:
            for path in finalized_files(root / folder):
                name = path.relative_to(settings.staging_dir).as_posix()
                if (name in done or path.stat().st_size == 0) and now - path.stat().st_mtime >= min_age_s:
                    path.unlink()
                    removed += 1
    return removed


def main() -> None:  # pragma: no cover - process entry point, exercised by the kill -9 test
    import argparse

    from ridecast.config import get_settings

    parser = argparse.ArgumentParser(description="ridecast Iceberg committer")
    parser.add_argument("--root", help="staging root (default: the stream's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    root = Path(args.root) if args.root else stream_root(settings)
    Committer(settings, root).run()


if __name__ == "__main__":  # pragma: no cover
    main()
