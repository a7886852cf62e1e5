"""The committer's exactly-once contract, crash by crash, on every catalog backend.

A "crash" is an exception raised at the exact point a SIGKILL could land: after the data files are written but
before the catalog commit, and after the catalog commit but before the committer's own bookkeeping. A new
Committer (a restarted process) must then leave exactly one copy of every row.
"""

from __future__ import annotations

import json

import pytest

from iceberg_catalog.catalog import open_catalog
from iceberg_catalog.committer import SUMMARY_KEY, Committer, cleanup_committed, committed_names

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """Not an Exception: like SIGKILL, nothing in the committer may swallow it."""


def _stage(settings, n_files: int, rows_per_file: int = 3) -> list[str]:
    folder = settings.staging_dir / "stream" / "silver"
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for f in range(n_files):
        lines = []
        for r in range(rows_per_file):
            eid = f"e{f}-{r}"
            ids.append(eid)
            lines.append(json.dumps({"event_id": eid, "event_time": "2026-01-05T08:00:00Z", "event_type": "requested",
                                     "pickup_zone": "BEDOK", "source": "kafka:t/0", "source_offset": f * 10 + r,
                                     "received_at": "2026-01-05T08:00:01.5Z", "is_late": 0}))
        (folder / f"part-x-0-{f}").write_text("\n".join(lines) + "\n")
    (folder / ".part-x-0-99.inprogress.abc").write_text('{"event_id": "in-progress"}\n')  # never read
    return ids


def _silver_ids(settings) -> list[str]:
    table = open_catalog(settings).load_table("silver.trip_events")
    return sorted(table.scan().to_arrow().column("event_id").to_pylist())


def test_commit_is_idempotent_and_skips_in_progress_files(catalog_settings):
    ids = _stage(catalog_settings, 3)
    c = Committer(catalog_settings, catalog_settings.staging_dir / "stream")
    done = c.commit_pending()
    assert done["silver.trip_events"].rows == 9
    assert c.commit_pending() == {}
    assert Committer(catalog_settings, catalog_settings.staging_dir / "stream").commit_pending() == {}
    assert _silver_ids(catalog_settings) == sorted(ids)


@pytest.mark.parametrize("when", ["before_catalog_commit", "after_catalog_commit"])
def test_crash_mid_commit_loses_and_duplicates_nothing(catalog_settings, monkeypatch, when):
    ids = _stage(catalog_settings, 4)
    catalog = open_catalog(catalog_settings)
    cls = type(catalog)
    original = cls.commit_table

    def crashing(self, table, requirements, updates):
        if when == "before_catalog_commit":
            raise Crash()
        response = original(self, table, requirements, updates)
        raise Crash()
        return response  # pragma: no cover

    monkeypatch.setattr(cls, "commit_table", crashing)
    with pytest.raises(Crash):
        Committer(catalog_settings, catalog_settings.staging_dir / "stream").commit_pending()
    monkeypatch.setattr(cls, "commit_table", original)

    expected_before = [] if when == "before_catalog_commit" else None
    if expected_before is not None:
        assert _silver_ids(catalog_settings) == []
    restarted = Committer(catalog_settings, catalog_settings.staging_dir / "stream")
    restarted.commit_pending()
    assert _silver_ids(catalog_settings) == sorted(ids)  # each exactly once


def test_cleanup_deletes_only_committed_files(catalog_settings):
    _stage(catalog_settings, 2)
    Committer(catalog_settings, catalog_settings.staging_dir / "stream").commit_pending()
    late = catalog_settings.staging_dir / "stream" / "silver" / "part-x-0-7"
    late.write_text(json.dumps({"event_id": "late", "event_time": "2026-01-05T08:00:00Z", "event_type": "requested",
                                "pickup_zone": "BEDOK"}) + "\n")
    removed = cleanup_committed(catalog_settings, min_age_s=0)
    assert removed == 2
    assert late.exists()  # not committed yet: kept
    assert (catalog_settings.staging_dir / "stream" / "silver" / ".part-x-0-99.inprogress.abc").exists()
    table = open_catalog(catalog_settings).load_table("silver.trip_events")
    assert len(committed_names(table)) == 2
    assert all(SUMMARY_KEY in s.summary.additional_properties for s in table.metadata.snapshots)
