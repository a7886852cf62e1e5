"""Backfills through the real batch job: history judged by its own time range, windows equal to the reference,
once per file, and a file that mostly lands in the dead letters fails loudly (issue 8).

The input is shaped like a public retail event log of 2010 (invoice time as "12/1/2010 8:26", country as the
place): older than ``max_event_age_days`` by the wall clock, which used to dead-letter such a file in full while
ingest reported "0 row(s) rejected".
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from iceberg_catalog.catalog import open_catalog
from ridecast.commands import data
from ridecast.config import get_settings
from ridecast.events import Reason, load_zones, reject_reason
from ridecast.sources.ingest import DeadLetteredError, ingest
from ridecast.stack.pipeline import backfill
from tests.reference import as_frame, assert_features_equal, reference_features

pytestmark = pytest.mark.integration

TIME_FORMAT = "%m/%d/%Y %H:%M"
TABLES = ("bronze.trip_events", "silver.trip_events", "gold.zone_features", "ops.dead_letters")


def _retail_csv(path: Path, *, days: int, rows: int, seed: int) -> Path:
    rng = random.Random(seed)
    start = datetime(2010, 12, 1, 8, 0)
    countries = ["United Kingdom", "France", "Germany", "EIRE"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "Country"])
        for i in range(rows):
            t = start + timedelta(minutes=rng.randrange(days * 24 * 60))
            w.writerow([536365 + i, "85123A", rng.randint(1, 12), f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}",
                        rng.choice(countries)])
    return path


def _restart_strategy_logged(settings) -> str:
    """What Flink's JobMaster says it restarts the job with (its own log, not our configuration of it)."""
    said = [line.split("Using restart back off time strategy ", 1)[1]
            for log in (settings.log_dir / "flink").glob("*.log")
            for line in log.read_text(errors="replace").splitlines() if "Using restart back off time strategy" in line]
    assert said, f"no restart strategy in the Flink logs under {settings.log_dir / 'flink'}"
    return said[-1]


def _counts(settings) -> dict[str, int]:
    catalog = open_catalog(settings)
    return {ident: catalog.load_table(ident).scan().to_arrow().num_rows for ident in TABLES}


def test_history_is_judged_by_its_own_time_range_windows_match_the_reference_once_per_file(settings, tmp_path):
    src = _retail_csv(tmp_path / "online_retail.csv", days=3, rows=1500, seed=7)
    r = ingest(src, time_col="InvoiceDate", zone_col="Country", time_format=TIME_FORMAT, to="backfill",
               settings=settings, progress=False)
    assert (r.rows, r.events, r.rejected) == (1500, 1500, 0)
    assert r.dead_lettered == {}, r.dead_lettered  # by the wall clock every event would be too old
    assert datetime.fromtimestamp(r.delivery.backfill.now_ms / 1000).year == 2010  # the file's own clock

    events = [json.loads(line) for line in r.delivery.path.read_text().splitlines()]
    catalog = open_catalog(settings)
    gold = as_frame(catalog.load_table("gold.zone_features").scan().to_arrow())
    expected = reference_features(events, settings.flink.window_minutes, settings.flink.slide_minutes)
    assert_features_equal(gold, expected)
    silver = catalog.load_table("silver.trip_events").scan().to_arrow()
    assert sorted(silver.column("event_id").to_pylist()) == sorted(e["event_id"] for e in events)
    f = settings.flink  # the job's own restart strategy, from settings, as Flink applied it
    assert _restart_strategy_logged(settings).startswith(
        f"FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts={f.restart_attempts}, "
        f"backoffTimeMS={f.restart_delay_s * 1000})")

    before = _counts(settings)
    again = backfill(r.delivery.path, settings.model_copy(update={"zones_file": r.zones_path}), progress=False)
    assert again.skipped and again.backfill_id == r.delivery.backfill.backfill_id
    assert _counts(settings) == before  # no duplicate row in any table
    assert before["gold.zone_features"] == len(expected) and before["ops.dead_letters"] == 0


def test_a_file_mostly_dead_lettered_fails_loudly_with_reasons_counts_and_the_fix(settings, tmp_path, monkeypatch):
    src = _retail_csv(tmp_path / "retail_ten_days.csv", days=10, rows=800, seed=8)
    monkeypatch.setenv("RIDECAST_FLINK__MAX_EVENT_AGE_DAYS", "2")  # the file spans 10 days
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_STRATEGY", "exponential-delay")  # the other strategy, applied by Flink
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_MAX_DELAY_S", "30")
    get_settings.cache_clear()
    app = typer.Typer()
    data.register(app)
    res = CliRunner().invoke(app, ["ingest", str(src), "--time-col", "InvoiceDate", "--zone-col", "Country",
                                   "--time-format", TIME_FORMAT, "--to", "backfill", "--no-progress"])
    assert res.exit_code == 2, res.output

    # what the job should have rejected, by the oracle, against the file's newest event
    s = get_settings()
    lines = (s.state_dir / "backfill" / "retail_ten_days.jsonl").read_text().splitlines()
    newest = max(json.loads(line)["event_time_ms"] for line in lines)
    zones = {z.zone for z in load_zones(s.state_dir / "zones" / "retail_ten_days.csv")}
    too_old = sum(reject_reason(line, zones, now_ms=newest, max_event_age_days=2) == Reason.TOO_OLD
                  for line in lines)
    assert len(lines) / 2 < too_old < len(lines)
    applied = _restart_strategy_logged(s)
    assert applied.startswith("ExponentialDelayRestartBackoffTimeStrategy(") and all(
        part in applied for part in (f"initialBackoffMS={s.flink.restart_delay_s * 1000},", "maxBackoffMS=30000,",
                                     f"attemptsBeforeResetBackoff={s.flink.restart_attempts}")), applied
    assert f"dead-lettered {too_old:,} of {len(lines):,} events" in res.output
    assert f"{Reason.TOO_OLD}: {too_old:,}" in res.output and "RIDECAST_FLINK__MAX_EVENT_AGE_DAYS" in res.output

    # the library raises the typed error; the file is not backfilled twice
    with pytest.raises(DeadLetteredError) as err:
        ingest(src, time_col="InvoiceDate", zone_col="Country", time_format=TIME_FORMAT, to="backfill",
               settings=s, progress=False)
    assert err.value.reasons == {Reason.TOO_OLD: too_old} and err.value.events == len(lines)
    counts = _counts(s)
    assert counts["ops.dead_letters"] == too_old and counts["silver.trip_events"] == len(lines) - too_old
