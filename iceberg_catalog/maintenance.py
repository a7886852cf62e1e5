"""Table maintenance: compact small files, expire old snapshots, remove orphan files.

Streaming commits leave many small files per day partition; readers pay per file. pyiceberg 0.12 has no
``rewrite_data_files`` (Iceberg-Java's compaction action), so :func:`compact` does what that action does,
partition by partition: read exactly the live data files of one partition, write their rows back as few
sorted files, and commit one snapshot that deletes those files and adds the new ones. Deleting *the files
read* (not "everything matching the partition") is what makes a concurrent writer safe: its new files are
never touched. The partition predicate is still given to the commit, so pyiceberg's serializable
validation refuses the commit if someone added or removed files in that partition meanwhile; we then
reload the table and redo the partition. Rows are neither lost nor duplicated under any interleaving.

:func:`expire_snapshots` uses pyiceberg's ``table.maintenance.expire_snapshots()`` (metadata only: data
files stay on storage). Snapshots kept are not rewritten, so their summary properties (e.g. the Flink sink's
``flink.job-id`` and checkpoint id, which it reads back before committing) survive.

:func:`remove_orphan_files` is what reclaims the storage, the way Iceberg-Java's ``remove_orphan_files`` action
does (pyiceberg 0.12 has none): list every file under the table's location, subtract every file the table's
metadata can still reach, and delete what is left *and older than a safety age*. The age is the only thing
protecting files of a commit in flight (written, not yet in the catalog), so it must exceed the longest commit.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
)
from pyiceberg.table.sorting import NullOrder, SortDirection
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, MonthTransform, YearTransform

if TYPE_CHECKING:
    from pyarrow.fs import FileInfo, FileSystem
    from pyiceberg.io import FileIO
    from pyiceberg.table import FileScanTask, Table

__all__ = [
    "COMPACT_OPERATION",
    "CompactionConflictError",
    "CompactionResult",
    "ExpireResult",
    "OrphanFilesError",
    "OrphanResult",
    "PartitionRewrite",
    "compact",
    "expire_snapshots",
    "reachable_files",
    "remove_orphan_files",
]

COMPACT_OPERATION = {"ridecast.operation": "compact"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class CompactionConflictError(RuntimeError):
    """Other writers kept changing a partition for every attempt; nothing was committed for it."""


class OrphanFilesError(RuntimeError):
    """Orphan removal refused to run on a table (its files cannot be listed, or the listing looks wrong)."""


@dataclass(frozen=True)
class PartitionRewrite:
    partition: str
    files_before: int
    files_after: int
    rows: int
    attempts: int
    snapshot_id: int | None


@dataclass(frozen=True)
class CompactionResult:
    table: str
    files_before: int  # live data files before (whole table)
    files_after: int
    partitions: tuple[PartitionRewrite, ...]

    @property
    def rows_rewritten(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def attempts(self) -> int:
        return max((p.attempts for p in self.partitions), default=0)


@dataclass(frozen=True)
class ExpireResult:
    table: str
    snapshots_before: int
    snapshots_after: int
    removed: tuple[int, ...]


@dataclass(frozen=True)
class OrphanResult:
    table: str
    location: str
    files_listed: int  # files under the table location
    files_referenced: int  # of those, reachable from the table metadata
    orphans: tuple[str, ...]  # unreachable and older than the safety age: deleted (or, in a dry run, would be)
    orphan_bytes: int
    young_kept: int  # unreachable but younger than the safety age (e.g. a commit in flight): kept
    failed: tuple[str, ...]  # deletions that raised (left in place)
    dry_run: bool

    @property
    def deleted(self) -> int:
        return 0 if self.dry_run else len(self.orphans) - len(self.failed)


# -- partition predicates -------------------------------------------------------------------------------
def _ts(micros_or_dt: Any) -> str:
    return micros_or_dt.isoformat()


def _field_predicate(table: "Table", spec_field, value: Any) -> BooleanExpression:
    """A row filter matching exactly one partition value of one field; AlwaysTrue when not expressible.

    AlwaysTrue is safe (only the files we read are deleted); it just widens conflict detection to the table.
    """
    source = table.schema().find_field(spec_field.source_id)
    col, tf = source.name, spec_field.transform
    if value is None:
        return IsNull(col)
    if isinstance(tf, IdentityTransform):
        return EqualTo(col, value)
    is_date = str(source.field_type) == "date"
    if isinstance(tf, (DayTransform, HourTransform)):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = (value - _EPOCH.date()).days
        step = dt.timedelta(days=1) if isinstance(tf, DayTransform) else dt.timedelta(hours=1)
        lo = _EPOCH + step * int(value)
        hi = lo + step
    elif isinstance(tf, (MonthTransform, YearTransform)):
        months = int(value) * (12 if isinstance(tf, YearTransform) else 1)
        span = 12 if isinstance(tf, YearTransform) else 1
        lo = dt.datetime(1970 + months // 12, months % 12 + 1, 1, tzinfo=dt.timezone.utc)
        end = months + span
        hi = dt.datetime(1970 + end // 12, end % 12 + 1, 1, tzinfo=dt.timezone.utc)
    else:
        return AlwaysTrue()
    if is_date:
        return And(GreaterThanOrEqual(col, lo.date().isoformat()), LessThan(col, hi.date().isoformat()))
    if str(source.field_type) == "timestamp":
        lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
    return And(GreaterThanOrEqual(col, _ts(lo)), LessThan(col, _ts(hi)))


def _partition_predicate(table: "Table", spec_id: int, partition) -> BooleanExpression:
    spec = table.specs()[spec_id]
    if spec.is_unpartitioned():
        return AlwaysTrue()
    preds = [_field_predicate(table, f, partition[i]) for i, f in enumerate(spec.fields)]
    preds = [p for p in preds if p != AlwaysTrue()]
    if not preds:
        return AlwaysTrue()
    return preds[0] if len(preds) == 1 else And(*preds)


def _partition_label(table: "Table", spec_id: int, partition) -> str:
    spec = table.specs()[spec_id]
    if spec.is_unpartitioned():
        return "(unpartitioned)"
    schema = table.schema()
    return ", ".join(f"{f.name}={f.transform.to_human_string(schema.find_field(f.source_id).field_type, partition[i])}"
                     for i, f in enumerate(spec.fields))


# -- compaction -----------------------------------------------------------------------------------------
def _live_tasks(table: "Table") -> list["FileScanTask"]:
    return list(table.scan().plan_files()) if table.current_snapshot() else []


def _group_key(task: "FileScanTask") -> tuple[int, tuple]:
    return task.file.spec_id, tuple(task.file.partition)


def _read_group(table: "Table", tasks: list["FileScanTask"]) -> pa.Table:
    """Rows of exactly these files, in the current schema (a seam tests use to inject a concurrent commit)."""
    from pyiceberg.io.pyarrow import ArrowScan

    return ArrowScan(
        table_metadata=table.metadata, io=table.io, projected_schema=table.schema(), row_filter=AlwaysTrue()
    ).to_table(tasks=tasks)


def _sorted(table: "Table", rows: pa.Table) -> pa.Table:
    """Apply the table's sort order (identity fields; transformed sort fields are skipped)."""
    order = table.sort_order()
    keys: list[tuple[str, str, str]] = []
    for sf in order.fields:
        if not isinstance(sf.transform, IdentityTransform):
            continue
        keys.append((
            table.schema().find_field(sf.source_id).name,
            "ascending" if sf.direction == SortDirection.ASC else "descending",
            "at_start" if sf.null_order == NullOrder.NULLS_FIRST else "at_end",
        ))
    if not keys or rows.num_rows == 0:
        return rows
    idx = pc.sort_indices(rows, sort_keys=keys)
    return rows.take(idx)


def _commit_rewrite(
    table: "Table", tasks: list["FileScanTask"], rows: pa.Table, predicate: BooleanExpression, target_bytes: int
) -> int | None:
    from pyiceberg.io.pyarrow import _dataframe_to_data_files
    from pyiceberg.table import TableProperties

    tx = table.transaction()
    metadata = tx.table_metadata
    metadata = metadata.model_copy(
        update={"properties": {**metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(target_bytes)}}
    )
    new_files: list = []
    try:
        with tx.update_snapshot(snapshot_properties=dict(COMPACT_OPERATION)).overwrite() as rewrite:
            if rows.num_rows:
                new_files = list(
                    _dataframe_to_data_files(
                        table_metadata=metadata, df=rows, io=table.io, write_uuid=rewrite.commit_uuid,
                        counter=itertools.count(0),
                    )
                )
            rewrite.delete_by_predicate(predicate)  # scopes manifest rewrite and conflict detection
            for task in tasks:
                rewrite.delete_data_file(task.file)
            for f in new_files:
                rewrite.append_data_file(f)
            snapshot_id = rewrite.snapshot_id
        tx.commit_transaction()
    except (CommitFailedException, ValidationException):
        for f in new_files:  # never referenced by a snapshot: remove them so retries leave no orphans
            try:
                table.io.delete(f.file_path)
            except OSError:
                pass
        raise
    return snapshot_id


def _compact_partition(
    table: "Table", key: tuple[int, tuple], *, min_files: int, target_bytes: int, max_attempts: int,
    on_retry: Callable[[int], None] | None,
) -> PartitionRewrite | None:
    for attempt in range(1, max_attempts + 1):
        if attempt > 1:
            table.refresh()  # a fresh load: the conflicting commit is now part of what we read
        tasks = [t for t in _live_tasks(table) if _group_key(t) == key]
        if len(tasks) < min_files:
            return None
        if any(t.delete_files for t in tasks):
            return None  # merge-on-read deletes: leave to an engine that rewrites delete files too
        spec_id, partition_values = key
        partition = tasks[0].file.partition
        rows = _sorted(table, _read_group(table, tasks))
        try:
            predicate = _partition_predicate(table, spec_id, partition)
            snapshot_id = _commit_rewrite(table, tasks, rows, predicate, target_bytes)
        except (CommitFailedException, ValidationException):
            if on_retry:
                on_retry(attempt)
            time.sleep(min(0.05 * 2**attempt, 2.0))
            continue
        table.refresh()
        after = sum(1 for t in _live_tasks(table) if _group_key(t) == key)
        return PartitionRewrite(_partition_label(table, spec_id, partition), len(tasks), after, rows.num_rows,
                                attempt, snapshot_id)
    raise CompactionConflictError(
        f"{'.'.join(table.name())}: partition {partition_values} changed during each of {max_attempts} attempts"
    )


def compact(
    table: "Table",
    *,
    min_files: int = 8,
    target_file_mb: int = 128,
    max_attempts: int = 5,
    on_retry: Callable[[int], None] | None = None,
) -> CompactionResult:
    """Rewrite every partition with at least ``min_files`` live data files into target-sized sorted files.

    One overwrite snapshot per partition, tagged ``ridecast.operation=compact`` (and carrying no other
    custom property). A commit that conflicts with another writer is redone from a fresh table load, up
    to ``max_attempts`` times per partition.
    """
    if min_files < 2:
        raise ValueError("min_files must be >= 2 (one file is already compact)")
    table.refresh()
    tasks = _live_tasks(table)
    before = len(tasks)
    counts: dict[tuple[int, tuple], int] = {}
    for t in tasks:
        counts[_group_key(t)] = counts.get(_group_key(t), 0) + 1
    done: list[PartitionRewrite] = []
    for key, n in sorted(counts.items(), key=lambda kv: repr(kv[0])):
        if n < min_files:
            continue
        res = _compact_partition(table, key, min_files=min_files, target_bytes=target_file_mb * 1024 * 1024,
                                 max_attempts=max_attempts, on_retry=on_retry)
        if res is not None:
            done.append(res)
    table.refresh()
    return CompactionResult(".".join(table.name()[-2:]), before, len(_live_tasks(table)), tuple(done))


# -- snapshot expiry ------------------------------------------------------------------------------------
def expire_snapshots(
    table: "Table",
    *,
    older_than: dt.timedelta,
    retain_last: int = 1,
    now: dt.datetime | None = None,
    max_attempts: int = 5,
) -> ExpireResult:
    """Remove snapshots older than ``older_than`` except the current one, the newest ``retain_last`` and
    branch/tag heads. Metadata only (pyiceberg does not delete files); kept snapshots are untouched."""
    if retain_last < 1:
        raise ValueError("retain_last must be >= 1 (the current snapshot is always kept)")
    cutoff_ms = int(((now or dt.datetime.now(dt.timezone.utc)) - older_than).timestamp() * 1000)
    for attempt in range(1, max_attempts + 1):
        table.refresh()
        snaps = sorted(table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
        keep = {s.snapshot_id for s in snaps[-retain_last:]}
        keep |= {ref.snapshot_id for ref in table.metadata.refs.values()}
        if (cur := table.current_snapshot()) is not None:
            keep.add(cur.snapshot_id)
        expire = [s.snapshot_id for s in snaps if s.timestamp_ms < cutoff_ms and s.snapshot_id not in keep]
        if not expire:
            return ExpireResult(".".join(table.name()[-2:]), len(snaps), len(snaps), ())
        try:
            table.maintenance.expire_snapshots().by_ids(expire).commit()
        except CommitFailedException:
            time.sleep(min(0.05 * 2**attempt, 2.0))
            continue
        table.refresh()
        return ExpireResult(".".join(table.name()[-2:]), len(snaps), len(table.snapshots()), tuple(expire))
    raise CommitFailedException(f"{'.'.join(table.name())}: snapshot expiry conflicted {max_attempts} times")


# -- orphan files ---------------------------------------------------------------------------------------
_VERSION_HINT = "metadata/version-hint.text"  # written by Hadoop catalogs; protected like Iceberg-Java does


def _manifest_files(table: "Table", manifest, cache: dict[str, frozenset[str]]) -> frozenset[str]:
    """Live data/delete file paths of one manifest (manifests are immutable, so cached by path)."""
    files = cache.get(manifest.manifest_path)
    if files is None:
        # live entries only (ADDED/EXISTING), as Iceberg-Java's reachability and ``inspect.all_files()``;
        # a DELETED entry names a file that only an older snapshot could still reach
        entries = manifest.fetch_manifest_entry(table.io, discard_deleted=True)
        files = frozenset(e.data_file.file_path for e in entries)
        cache[manifest.manifest_path] = files
    return files


def _reachable(table: "Table", cache: dict[str, frozenset[str]]) -> tuple[set[str], set[str]]:
    """(files needed to read the table at any snapshot, other metadata files worth keeping)."""
    md = table.metadata
    required: set[str] = {table.metadata_location}
    for snapshot in md.snapshots:  # every snapshot still in the metadata: branches, tags, time travel
        required.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            required.add(manifest.manifest_path)
            required |= _manifest_files(table, manifest, cache)
    extra = {entry.metadata_file for entry in md.metadata_log}
    extra |= {s.statistics_path for s in md.statistics}
    extra |= {s.statistics_path for s in md.partition_statistics}
    extra.add(f"{md.location.rstrip('/')}/{_VERSION_HINT}")
    return required, extra


def reachable_files(table: "Table") -> set[str]:
    """Every file location the table's current metadata reaches: the current and logged metadata.json files,
    statistics files, and for each snapshot its manifest list, its manifests and their live data/delete files."""
    required, extra = _reachable(table, {})
    return required | extra


def _listing_fs(io: "FileIO", location: str) -> tuple["FileSystem", str, str]:
    fs_by_scheme = getattr(io, "fs_by_scheme", None)
    parse = getattr(io, "parse_location", None)
    if fs_by_scheme is None or parse is None:
        raise OrphanFilesError(
            f"cannot list files with {type(io).__module__}.{type(io).__name__}: orphan removal needs a FileIO that "
            "exposes a pyarrow filesystem (py-io-impl=pyiceberg.io.pyarrow.PyArrowFileIO); skip it with --no-orphans"
        )
    scheme, netloc, path = parse(location, io.properties)
    return fs_by_scheme(scheme, netloc), scheme, path


def _path_key(io: "FileIO", location: str) -> str:
    """A location as the filesystem path it names, so URIs in metadata (file:///…, s3a://…) and listed paths
    compare."""
    scheme, _, path = io.parse_location(location, io.properties)  # type: ignore[attr-defined]
    return os.path.normpath(path) if scheme == "file" else path


def _hidden(relative: str) -> bool:
    """Hidden like Iceberg-Java's listing: a component starting with '.' or '_' (but '_x=1' is a partition)."""
    return any(part[:1] in (".", "_") and "=" not in part for part in relative.split("/"))


def _mtime(info: "FileInfo") -> dt.datetime | None:
    m = info.mtime
    if m is None:
        return None
    return m if m.tzinfo else m.replace(tzinfo=dt.timezone.utc)


def remove_orphan_files(
    table: "Table",
    *,
    older_than: dt.timedelta = dt.timedelta(days=3),
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> OrphanResult:
    """Delete files under the table's location that its metadata no longer reaches and that are older than
    ``older_than`` (by modification time); with ``dry_run`` only report them.

    Reachable is :func:`reachable_files` of the table loaded before the listing *and* reloaded after it, so a
    commit landing meanwhile protects what it references. Files newer than the cut-off are never deleted:
    they may belong to a commit in flight, written but not yet in the catalog. Hidden files (``.x``, ``_x``)
    are never deleted. As a guard against path mismatches (which would make every file look unreferenced),
    the run is refused if any file the table needs is missing from the listing.
    """
    if older_than < dt.timedelta(0):
        raise ValueError("older_than must be >= 0")
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - older_than
    name = ".".join(table.name()[-2:])
    io = table.io
    table.refresh()
    location = table.location().rstrip("/")
    fs, scheme, base = _listing_fs(io, location)
    base_key = _path_key(io, location)
    if base_key in ("", "/", ".") or base_key.count("/") < 1:
        raise OrphanFilesError(f"{name}: refusing to list table location {location!r} (a filesystem root)")
    cache: dict[str, frozenset[str]] = {}
    required, extra = _reachable(table, cache)
    from pyarrow.fs import FileSelector, FileType

    try:
        infos = fs.get_file_info(FileSelector(base.rstrip("/"), recursive=True, allow_not_found=True))
    except (OSError, NotImplementedError) as exc:
        raise OrphanFilesError(f"{name}: cannot list {location}: {exc}") from exc
    files = [i for i in infos if i.type == FileType.File]
    table.refresh()  # anything committed while we listed is protected too
    required_after, extra_after = _reachable(table, cache)
    referenced = {_path_key(io, f) for f in required | extra | required_after | extra_after}

    listed = {os.path.normpath(i.path) if scheme == "file" else i.path: i for i in files}
    prefix = base_key + "/"
    missing = sorted(k for k in (_path_key(io, f) for f in required) if k.startswith(prefix) and k not in listed)
    if missing:
        raise OrphanFilesError(
            f"{name}: {len(missing)} file(s) the table references were not found by listing {location} "
            f"(e.g. {missing[0]}); a path mismatch or a concurrent deletion: nothing deleted"
        )
    orphans: list[tuple[str, int]] = []
    young = 0
    for key, info in sorted(listed.items()):
        if key in referenced or not key.startswith(prefix) or _hidden(key[len(prefix):]):
            continue
        mtime = _mtime(info)
        if mtime is None or mtime >= cutoff:  # unknown age counts as young: never guess in favour of deleting
            young += 1
            continue
        orphans.append((info.path, info.size or 0))
    failed: list[str] = []
    if not dry_run:
        for path, _ in orphans:
            try:
                fs.delete_file(path)
            except FileNotFoundError:
                pass  # already gone (another cleanup): the goal is met
            except OSError:
                failed.append(path)
    return OrphanResult(
        table=name,
        location=location,
        files_listed=len(files),
        files_referenced=sum(1 for k in listed if k in referenced),
        orphans=tuple(p for p, _ in orphans),
        orphan_bytes=sum(size for _, size in orphans),
        young_kept=young,
        failed=tuple(failed),
        dry_run=dry_run,
    )
