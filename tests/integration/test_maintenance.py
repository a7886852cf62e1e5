"""Compaction, snapshot expiry and orphan-file removal on real Iceberg tables (SQLite and PostgreSQL catalogs),
including a concurrent writer committing between compaction's read and its commit."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from iceberg_catalog import maintenance
from iceberg_catalog.catalog import ensure_tables, open_catalog
from iceberg_catalog.maintenance import (
    OrphanFilesError,
    compact,
    expire_snapshots,
    reachable_files,
    remove_orphan_files,
)

pytestmark = pytest.mark.integration

BASE = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
ZONES = ["TAMPINES", "BEDOK", "ANG MO KIO", "YISHUN", "CLEMENTI"]


def _batch(table, i: int, days: int = 2) -> pa.Table:
    """Commit i: one row per day partition per zone subset, zones deliberately out of sort order."""
    rows = []
    for d in range(days):
        for k in range(2):
            end = BASE + dt.timedelta(days=d, minutes=5 * i + 15)
            rows.append(dict(zone=ZONES[(i + 3 * k) % len(ZONES)], window_minutes=15 * (k + 1),
                             window_start=end - dt.timedelta(minutes=15), window_end=end, requests=i * 10 + k,
                             completions=i, cancellations=k, fare_sum=float(i), fare_mean=None, fare_max=1.0,
                             wait_mean=2.0, wait_max=3.0, surge_mean=1.0, events=i + k, computed_at=end))
    return pa.Table.from_pylist(rows, schema=table.schema().as_arrow())


def _multiset(table) -> Counter:
    return Counter(tuple(sorted(r.items())) for r in table.scan().to_arrow().to_pylist())


@pytest.fixture
def features(catalog_settings):
    """gold.zone_features after 20 small streaming-style commits (2 files each: one per day partition)."""
    t = ensure_tables(open_catalog(catalog_settings))["gold.zone_features"]
    for i in range(20):
        t.append(_batch(t, i), snapshot_properties={"ridecast.source-files": f"part-{i:04d}.json"})
    return catalog_settings, t


def test_compact_reduces_files_keeps_rows_and_sort_order(features):
    _, t = features
    before_rows = _multiset(t)
    res = compact(t, min_files=8)
    assert (res.files_before, res.files_after) == (40, 2)
    assert sorted(p.files_before for p in res.partitions) == [20, 20]
    assert res.rows_rewritten == 80
    assert _multiset(t) == before_rows and sum(before_rows.values()) == 80
    for p in res.partitions:
        summary = t.snapshot_by_id(p.snapshot_id).summary
        assert summary["ridecast.operation"] == "compact"
        assert "ridecast.source-files" not in summary.additional_properties
    for path in t.inspect.files().column("file_path").to_pylist():  # each new file sorted by zone, minutes, end
        keys = pq.read_table(path.removeprefix("file://"), columns=["zone", "window_minutes", "window_end"]).to_pylist()
        assert keys == sorted(keys, key=lambda r: (r["zone"], r["window_minutes"], r["window_end"]))
    again = compact(t, min_files=8)  # nothing left to do
    assert again.partitions == () and again.files_after == 2


def test_concurrent_append_during_compaction_is_not_lost(features, monkeypatch):
    settings, t = features
    other_writer = open_catalog(settings).load_table("gold.zone_features")  # a separate process, in effect
    extra = _batch(other_writer, 99, days=1)  # lands in the first day partition: the one being compacted
    real_read = maintenance._read_group
    calls = {"n": 0}

    def read_then_someone_commits(table, tasks):
        rows = real_read(table, tasks)
        calls["n"] += 1
        if calls["n"] == 1:
            other_writer.append(extra, snapshot_properties={"ridecast.source-files": "late.json"})
        return rows

    monkeypatch.setattr(maintenance, "_read_group", read_then_someone_commits)
    expected = _multiset(t) + Counter(tuple(sorted(r.items())) for r in extra.to_pylist())
    res = compact(t, min_files=8)
    t.refresh()
    assert _multiset(t) == expected  # nothing lost, nothing duplicated
    first_day = next(p for p in res.partitions if p.partition.endswith("2024-05-01"))
    assert first_day.attempts >= 2 and first_day.files_before == 21  # redone from a fresh load
    assert res.files_after == 2
    assert any(s.summary.additional_properties.get("ridecast.source-files") == "late.json" for s in t.snapshots())


def test_expire_keeps_current_and_last_n_with_their_properties(features):
    _, t = features
    snaps = sorted(t.snapshots(), key=lambda s: s.timestamp_ms)
    current = t.current_snapshot().snapshot_id
    rows = _multiset(t)
    res = expire_snapshots(t, older_than=dt.timedelta(0), retain_last=3,
                           now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
    kept = {s.snapshot_id for s in t.snapshots()}
    assert kept == {s.snapshot_id for s in snaps[-3:]} and current in kept
    assert res.snapshots_before == 20 and res.snapshots_after == 3 and len(res.removed) == 17
    assert t.current_snapshot().snapshot_id == current
    assert sorted(t.snapshot_by_id(i).summary["ridecast.source-files"] for i in kept) == [
        "part-0017.json", "part-0018.json", "part-0019.json"]
    assert _multiset(t) == rows
    nothing_old = expire_snapshots(t, older_than=dt.timedelta(days=1), retain_last=1)
    assert nothing_old.removed == ()


# -- orphan files ---------------------------------------------------------------------------------------
def _dir(table) -> Path:
    return Path(table.location().removeprefix("file://"))


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file below root."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _age(root: Path, days: float) -> None:
    old = time.time() - days * 86400
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))


def _local(paths) -> set[str]:
    return {p.removeprefix("file://") for p in paths}


def _at(table, snapshot_id: int) -> Counter:
    return Counter(tuple(sorted(r.items())) for r in table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist())


def _compact_and_expire(t, retain_last: int = 2):
    compact(t, min_files=8)
    expire_snapshots(t, older_than=dt.timedelta(0), retain_last=retain_last,
                     now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))


def test_orphans_of_compaction_and_expiry_are_removed_and_every_snapshot_still_reads(features):
    _, t = features
    day1_small = {p for p in _local(t.inspect.files().column("file_path").to_pylist()) if "2024-05-01" in p}
    _compact_and_expire(t, retain_last=2)  # keeps the two compaction snapshots: day 2 is small files in the first
    kept = {s.snapshot_id: _at(t, s.snapshot_id) for s in t.snapshots()}
    assert len(kept) == 2
    rows = _multiset(t)
    root = _dir(t)
    _age(root, days=4)  # everything, referenced or not, is past the 3-day safety age
    young = root / "data" / "window_day=2024-05-01" / "00000-0-in-flight-commit.parquet"
    shutil.copy(next(iter(day1_small)), young)  # a file an in-flight commit just wrote: not referenced yet
    hidden = root / "data" / ".tmp-part.crc"
    hidden.write_text("x")
    os.utime(hidden, (0, 0))
    before = _files(root)
    reachable = _local(reachable_files(t))
    # the same set pyiceberg's own metadata tables reach, plus the metadata.json files
    assert _local(t.inspect.all_files().column("file_path").to_pylist()) <= reachable
    assert _local(t.inspect.all_manifests().column("path").to_pylist()) <= reachable
    assert _local(s.manifest_list for s in t.snapshots()) <= reachable
    assert t.metadata_location.removeprefix("file://") in reachable

    dry = remove_orphan_files(t, dry_run=True)
    assert _files(root) == before  # a dry run deletes nothing, not even touches
    orphans = set(dry.orphans)
    assert day1_small <= orphans  # compacted away and no longer in any snapshot
    assert not orphans & reachable and str(young) not in orphans and str(hidden) not in orphans
    assert orphans == set(before) - reachable - {str(young), str(hidden)}
    assert any(p.endswith(".avro") and "/metadata/snap-" in p for p in orphans)  # manifest lists of expired snaps
    assert any(p.endswith(".avro") and "/metadata/snap-" not in p for p in orphans)  # and their manifests
    assert dry.orphan_bytes == sum(before[p][0] for p in orphans) and dry.deleted == 0
    assert dry.young_kept == 1 and dry.files_referenced == len(reachable & set(before))

    res = remove_orphan_files(t)
    assert set(res.orphans) == orphans and res.deleted == len(orphans) and res.failed == ()
    after = _files(root)
    assert set(after) == set(before) - orphans
    assert all(after[p] == before[p] for p in after)  # survivors untouched
    assert young.exists() and hidden.exists()
    t.refresh()
    assert _multiset(t) == rows
    for snapshot_id, expected in kept.items():  # time travel to every remaining snapshot
        assert _at(t, snapshot_id) == expected
    again = remove_orphan_files(t)
    assert again.orphans == () and again.young_kept == 1


def test_orphan_removal_never_touches_another_table(features):
    settings, t = features
    other = open_catalog(settings).load_table("silver.trip_events")
    event = {"event_time": BASE, "event_type": "requested", "pickup_zone": "BEDOK"}
    other_rows = pa.Table.from_pylist([{"event_id": f"e{i}", **event} for i in range(3)],
                                      schema=other.schema().as_arrow())
    for i in range(3):
        other.append(other_rows.slice(i, 1))
    expire_snapshots(other, older_than=dt.timedelta(0), retain_last=1,
                     now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))  # other has orphans of its own
    _compact_and_expire(t, retain_last=1)
    warehouse = _dir(t).parent.parent
    lookalike = _dir(t).parent / (_dir(t).name + "_old") / "data" / "stale.parquet"  # shares the location prefix
    lookalike.parent.mkdir(parents=True)
    lookalike.write_bytes(b"not ours")
    _age(warehouse, days=30)
    outside = {p: v for p, v in _files(warehouse).items() if not p.startswith(str(_dir(t)) + os.sep)}
    assert any(p.startswith(str(_dir(other))) for p in outside)
    res = remove_orphan_files(t, older_than=dt.timedelta(0))
    assert res.deleted > 0 and all(p.startswith(str(_dir(t)) + os.sep) for p in res.orphans)
    assert {p: v for p, v in _files(warehouse).items() if not p.startswith(str(_dir(t)) + os.sep)} == outside
    assert sorted(other.refresh().scan().to_arrow().column("event_id").to_pylist()) == ["e0", "e1", "e2"]


def test_orphan_removal_refuses_when_a_referenced_file_is_missing(features):
    """If the listing does not show a file the table needs (path mismatch, concurrent deletion), nothing goes."""
    _, t = features
    _compact_and_expire(t, retain_last=1)
    root = _dir(t)
    _age(root, days=4)
    live = t.inspect.files().column("file_path").to_pylist()[0].removeprefix("file://")
    os.rename(live, live + ".moved")  # the table now references a file the listing cannot see
    before = _files(root)
    with pytest.raises(OrphanFilesError, match="not found by listing"):
        remove_orphan_files(t)
    assert _files(root) == before


def test_maintain_cli_removes_orphans_after_expiry(settings):
    from ridecast.commands import maintain as maintain_cmd

    t = ensure_tables(open_catalog(settings), ["gold.zone_features"])["gold.zone_features"]
    for i in range(10):
        t.append(_batch(t, i))
    rows = _multiset(t)
    root = _dir(t)
    app = typer.Typer()
    maintain_cmd.register(app)
    run = ["-t", "gold.zone_features", "--min-files", "4", "--older-than-hours", "0", "--retain-last", "1",
           "--orphan-age-hours", "0"]  # snapshots may not expire before staging
    env = {"COLUMNS": "250"}
    first = _files(root)
    out = CliRunner().invoke(app, [*run, "--orphans-dry-run"], env=env)
    assert out.exit_code == 0, out.output
    assert "orphans (dry run)" in out.stdout
    after_dry = _files(root)
    assert set(first) <= set(after_dry)  # compaction and expiry ran; nothing was deleted
    out = CliRunner().invoke(app, [*run, "--no-orphans"], env=env)
    assert out.exit_code == 0, out.output
    assert "orphan" not in out.stdout and set(after_dry) <= set(_files(root))
    out = CliRunner().invoke(app, run, env=env)
    assert out.exit_code == 0, out.output
    assert "orphans deleted" in out.stdout and "< 24" in out.stdout  # the short age is warned about
    t.refresh()
    assert set(_files(root)) == _local(reachable_files(t)) & set(_files(root))  # only referenced files are left
    assert len(_files(root)) < len(after_dry)
    assert _multiset(t) == rows
