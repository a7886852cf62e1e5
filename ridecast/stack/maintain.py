"""Table maintenance: compact small files, expire old snapshots, then remove orphan files, per ridecast table.

Compaction is this module's, not the feature job's: Iceberg's Flink sink commits one small file per table and
checkpoint, and its own post-commit compaction (``flink-maintenance.rewrite.enabled``) is still marked
experimental in Iceberg 1.11. Orphan removal comes last: compaction and expiry are what leave data files,
manifests and manifest lists that no snapshot references any more; it deletes only those older than
``orphan_age`` (commits in flight).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ridecast.config import Settings, get_settings

__all__ = ["SAFE_ORPHAN_AGE", "MaintainOptions", "MaintainReport", "TableMaintenance", "UnknownTableError", "maintain",
           "resolve_tables", "steps_per_table"]

# a commit in flight longer than this would lose its files to orphan removal: callers warn below it
SAFE_ORPHAN_AGE = dt.timedelta(hours=24)


class UnknownTableError(ValueError):
    """A table name that is not in iceberg_catalog.tables.TABLES."""


@dataclass(frozen=True)
class MaintainOptions:
    min_files: int = 8
    target_file_mb: int = 128
    older_than: dt.timedelta = dt.timedelta(hours=120)
    retain_last: int = 5
    orphans: bool = True
    orphan_age: dt.timedelta = dt.timedelta(hours=72)
    orphans_dry_run: bool = False

    @property
    def risky_orphan_age(self) -> bool:
        """True when orphan removal would delete files younger than a long commit may take."""
        return self.orphans and not self.orphans_dry_run and self.orphan_age < SAFE_ORPHAN_AGE


@dataclass(frozen=True)
class TableMaintenance:
    identifier: str
    files_before: int
    files_after: int
    partitions_compacted: int
    rows_rewritten: int
    snapshots_removed: int
    snapshots_left: int
    orphans: int | None = None  # deleted, or found on a dry run; None when orphan removal did not run
    orphan_bytes: int = 0
    orphans_too_young: int = 0


@dataclass(frozen=True)
class MaintainReport:
    options: MaintainOptions
    tables: tuple[TableMaintenance, ...]
    failed: tuple[str, ...]  # orphan files that could not be deleted


def resolve_tables(tables: Sequence[str] | None) -> list[str]:
    """The identifiers to maintain (all by default); an unknown one is a :class:`UnknownTableError`."""
    from iceberg_catalog.tables import TABLES

    idents = list(tables) if tables else list(TABLES)
    unknown = [i for i in idents if i not in TABLES]
    if unknown:
        raise UnknownTableError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLES)}")
    return idents


def maintain(settings: Settings | None = None, *, tables: Sequence[str] | None = None,
             options: MaintainOptions = MaintainOptions(),
             on_step: Callable[[str], None] | None = None) -> MaintainReport:
    """Maintain ``tables`` (default: all); ``on_step`` hears each step's description before it runs."""
    from iceberg_catalog.catalog import load_table, open_catalog
    from iceberg_catalog.maintenance import compact, expire_snapshots, remove_orphan_files

    step = on_step or (lambda _: None)
    s = settings or get_settings()
    idents = resolve_tables(tables)
    catalog = open_catalog(s)
    done: list[TableMaintenance] = []
    failed: list[str] = []
    for ident in idents:
        tbl = load_table(catalog, ident)
        step(f"compacting {ident}")
        comp = compact(tbl, min_files=options.min_files, target_file_mb=options.target_file_mb)
        step(f"expiring {ident}")
        exp = expire_snapshots(tbl, older_than=options.older_than, retain_last=options.retain_last)
        orphans: dict[str, int] = {}
        if options.orphans:  # after expiry: that is what leaves files unreferenced
            step(f"removing orphan files of {ident}")
            orph = remove_orphan_files(tbl, older_than=options.orphan_age, dry_run=options.orphans_dry_run)
            failed += orph.failed
            orphans = dict(orphans=len(orph.orphans) if options.orphans_dry_run else orph.deleted,
                           orphan_bytes=orph.orphan_bytes, orphans_too_young=orph.young_kept)
        done.append(TableMaintenance(ident, comp.files_before, comp.files_after, len(comp.partitions),
                                     comp.rows_rewritten, len(exp.removed), exp.snapshots_after, **orphans))
    return MaintainReport(options, tuple(done), tuple(failed))


def steps_per_table(options: MaintainOptions) -> int:
    """How many times :func:`maintain` calls ``on_step`` per table (for a progress bar's total)."""
    return 3 if options.orphans else 2
