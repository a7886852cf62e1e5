"""Bring-your-own-data ingest: real CSV and Parquet files in, v1 events, rejects and a zone list out."""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ridecast.events import load_zones, reject_reason
from ridecast.sources.ingest import IngestError, RejectReason, infer_period, ingest, map_file, parse_period, parse_times

pytestmark = pytest.mark.unit

H = 3_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
T0 = int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)

CSV = """ts,station,count,kind
2025-01-01 00:00:00,A,3,requested
2025-01-01 01:00:00,A,2,requested
2025-01-01 00:00:00,B,0,requested
2025-01-01 01:00:00,B,5,completed
2025-01-01 02:00:00,B,-1,requested
not a time,A,1,requested
2025-01-01 03:00:00,,1,requested
2025-01-01 03:00:00,C,1.5,requested
2025-01-01 03:00:00,C,many,requested
2025-01-01T04:00:00+08:00,C,1,teleported
1735693200,007,4,cancelled
"""


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    p = tmp_path / "rentals.csv"
    p.write_text(CSV)
    return p


def _by_row(m) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r, t in zip(m.row.tolist(), m.t.tolist()):
        out.setdefault(r, []).append(t)
    return out


def test_csv_counts_expand_exactly_within_their_period(csv_file: Path, tmp_path: Path):
    rejects = tmp_path / "rejects.jsonl"
    m = map_file(csv_file, time_col="ts", zone_col="station", value_col="count", type_col="kind",
                 rejects_path=rejects)
    assert m.rows == 11 and m.period == timedelta(hours=1)
    rows = _by_row(m)
    expected = {0: (T0, 3), 1: (T0 + H, 2), 3: (T0 + H, 5), 10: (T0 + H, 4)}  # row 2 has count 0
    assert {r: len(ts) for r, ts in rows.items()} == {r: n for r, (_, n) in expected.items()}
    for r, (start, _) in expected.items():
        assert all(start <= t < start + H for t in rows[r])
        assert len(set(rows[r])) == len(rows[r])
    assert m.events == 14 and list(m.t) == sorted(m.t)
    events = list(m.iter_events())
    assert Counter((e["pickup_zone"], e["event_type"]) for e in events) == Counter(
        {("A", "requested"): 5, ("B", "completed"): 5, ("007", "cancelled"): 4}
    )
    assert all(reject_reason(e, set(m.zones), now_ms=T0 + 10 * H) is None for e in events)
    assert len({e["event_id"] for e in events}) == 14


def test_rejects_are_counted_and_written_with_reasons(csv_file: Path, tmp_path: Path):
    rejects = tmp_path / "rejects.jsonl"
    m = map_file(csv_file, time_col="ts", zone_col="station", value_col="count", type_col="kind",
                 rejects_path=rejects)
    lines = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert m.rejected == len(lines) == 6
    assert {x["row"]: x["reason"] for x in lines} == {
        4: RejectReason.NEGATIVE_COUNT, 5: RejectReason.BAD_TIME, 6: RejectReason.EMPTY_ZONE,
        7: RejectReason.NON_INTEGER_COUNT, 8: RejectReason.BAD_COUNT, 9: RejectReason.UNKNOWN_TYPE,
    }
    assert lines[1]["record"]["ts"] == "not a time"
    assert m.reasons == Counter(x["reason"] for x in lines)
    assert m.rows == m.rejected + 5  # every row either mapped or rejected


def test_same_file_same_ids_and_times(csv_file: Path, tmp_path: Path):
    a = list(map_file(csv_file, time_col="ts", zone_col="station", value_col="count").iter_events())
    b = list(map_file(csv_file, time_col="ts", zone_col="station", value_col="count").iter_events())
    assert a == b
    other = tmp_path / "other.csv"
    other.write_text(CSV)
    c = list(map_file(other, time_col="ts", zone_col="station", value_col="count").iter_events())
    assert {e["event_id"] for e in a}.isdisjoint(e["event_id"] for e in c)  # ids hash the file name


def test_without_value_column_each_row_is_one_event_at_its_time(csv_file: Path):
    m = map_file(csv_file, time_col="ts", zone_col="station")
    assert m.period is None
    assert m.events == 9 and m.rejected == 2  # bad time, empty zone
    # the +08:00 row is 20:00 UTC the day before
    assert sorted(set(m.t.tolist())) == [T0 - 4 * H, T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    assert m.t.tolist() == sorted(m.t)


def test_explicit_period_and_inference():
    assert parse_period("15min") == timedelta(minutes=15) and parse_period("1h") == timedelta(hours=1)
    with pytest.raises(ValueError):
        parse_period("-1h")
    t = np.array([0, 30, 60, 90, 0, 60, 120], dtype=np.int64) * 60_000
    z = np.array([0, 0, 0, 0, 1, 1, 1])
    assert infer_period(t, z) == timedelta(minutes=30)
    assert infer_period(np.array([5], np.int64), np.array([0])) is None


def test_parquet_with_timestamps_and_numeric_zone_ids(tmp_path: Path):
    n = 48
    times = [datetime(2025, 6, 1) + timedelta(minutes=30 * (i // 2)) for i in range(n)]
    table = pa.table({
        "slot": pa.array(times, pa.timestamp("us")),  # naive wall time
        "store": pa.array([101 if i % 2 else 202 for i in range(n)], pa.int64()),
        "orders": pa.array([i % 5 for i in range(n)], pa.int32()),
    })
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=10)
    m = map_file(path, time_col="slot", zone_col="store", value_col="orders", tz="Asia/Singapore", batch_rows=7)
    assert m.rows == n and m.rejected == 0 and m.period == timedelta(minutes=30)
    assert sorted(m.zones) == ["101", "202"]
    assert m.events == sum(i % 5 for i in range(n))
    first = int(datetime(2025, 6, 1, tzinfo=timezone(timedelta(hours=8))).timestamp() * 1000)
    rows = _by_row(m)
    for r, ts in rows.items():
        start = first + 30 * 60_000 * (r // 2)
        assert all(start <= t < start + 30 * 60_000 for t in ts)
    per_zone = dict(zip(m.zones, m.zone_events.tolist()))
    assert per_zone["101"] == sum(i % 5 for i in range(1, n, 2))


def test_unknown_column_is_a_clear_error(csv_file: Path):
    with pytest.raises(IngestError, match="nope"):
        map_file(csv_file, time_col="nope", zone_col="station")


_naive = st.datetimes(min_value=datetime(2001, 10, 1), max_value=datetime(2099, 12, 31))


@hsettings(max_examples=150, deadline=None)
@given(dt=_naive, offset_min=st.integers(-14 * 60, 14 * 60).filter(lambda m: m % 15 == 0),
       style=st.sampled_from(["iso_naive", "iso_offset", "iso_z", "epoch_s", "epoch_ms", "space"]))
def test_parse_times_round_trips(dt: datetime, offset_min: int, style: str):
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    utc = dt.replace(tzinfo=timezone.utc)
    want = (utc - EPOCH) // timedelta(milliseconds=1)  # exact; float timestamps round
    if style == "iso_naive":
        text = dt.isoformat()
    elif style == "space":
        text = dt.isoformat(sep=" ")
    elif style == "iso_z":
        text = dt.isoformat() + "Z"
    elif style == "iso_offset":
        text = utc.astimezone(timezone(timedelta(minutes=offset_min))).isoformat()
    elif style == "epoch_s":
        text, want = str(int(utc.timestamp())), int(utc.timestamp()) * 1000
    else:
        text = str(want)
    ms, ok = parse_times([text, "garbage"])
    assert ok.tolist() == [True, False]
    assert int(ms[0]) == want


@hsettings(max_examples=50, deadline=None)
@given(dt=_naive)
def test_parse_times_naive_times_are_in_the_given_zone(dt: datetime):
    ms, ok = parse_times([dt.isoformat()], tz="Asia/Singapore")
    assert ok[0] and int(ms[0]) == (dt.replace(tzinfo=timezone.utc) - EPOCH) // timedelta(milliseconds=1) - 8 * H


def test_parse_times_explicit_formats():
    ms, ok = parse_times(["03/01/2025 10:00", "31/12/2025 10:00"], time_format="%d/%m/%Y %H:%M")
    assert ok.all() and int(ms[0]) == int(datetime(2025, 1, 3, 10, tzinfo=timezone.utc).timestamp() * 1000)
    ms, ok = parse_times(["03/01/2025 10:00"])  # ambiguous without a format: rejected, not guessed
    assert not ok[0]
    ms, ok = parse_times(["20250101"])  # not taken for epoch seconds in 1970
    assert not ok[0]
    ms, ok = parse_times(["1735689600"], time_format="epoch_ms")
    assert ok[0] and int(ms[0]) == 1735689600


def test_ingest_backfill_writes_zone_list_and_hands_the_file_to_the_pipeline(csv_file, settings, monkeypatch):
    calls = []
    fake = types.ModuleType("ridecast.stack.pipeline")
    fake.backfill = lambda path, settings=None, **kw: calls.append((Path(path), settings)) or "ok"
    fake.backfill_dead_letters = lambda result, settings=None: {}
    monkeypatch.setitem(sys.modules, "ridecast.stack.pipeline", fake)

    r = ingest(csv_file, time_col="ts", zone_col="station", value_col="count", type_col="kind",
               to="backfill", settings=settings)
    assert (r.events, r.rejected, r.zones) == (14, 6, 3) and r.delivery.backfill == "ok"
    assert r.delivery.path == settings.state_dir / "backfill" / "rentals.jsonl" and r.delivery.written == 14
    assert r.rejects_path == settings.state_dir / "backfill" / "rentals.rejects.jsonl" and r.rejects_path.exists()
    assert len(r.delivery.path.read_text().splitlines()) == 14
    assert r.zones_path == settings.state_dir / "zones" / "rentals.csv"
    zones = load_zones(r.zones_path)
    assert {z.zone: z.weight for z in zones} == pytest.approx({"A": 5 / 14, "B": 5 / 14, "007": 4 / 14})
    [(path, passed)] = calls
    assert path == r.delivery.path and passed.zones_file == r.zones_path  # the pipeline validates these zones


def test_cli_ingest_prints_rejects_and_how_to_use_the_zones(csv_file, settings, monkeypatch, tmp_path):
    import typer
    from typer.testing import CliRunner

    from ridecast.commands import data

    fake = types.ModuleType("ridecast.stack.pipeline")
    fake.backfill = lambda path, settings=None, **kw: "done"
    fake.backfill_dead_letters = lambda result, settings=None: {}
    monkeypatch.setitem(sys.modules, "ridecast.stack.pipeline", fake)
    app = typer.Typer()
    data.register(app)
    out = tmp_path / "z.csv"
    res = CliRunner().invoke(app, ["ingest", str(csv_file), "--time-col", "ts", "--zone-col", "station",
                                   "--value-col", "count", "--type-col", "kind", "--to", "backfill",
                                   "--zones-out", str(out)])
    assert res.exit_code == 0, res.output
    assert "6 row(s) rejected" in res.output and f"RIDECAST_ZONES_FILE={out}" in res.output
    assert out.exists()
    res = CliRunner().invoke(app, ["ingest", str(csv_file), "--time-col", "when", "--zone-col", "station"])
    assert res.exit_code == 2 and "when" in res.output


def test_cli_simulate_writes_jsonl(settings, tmp_path):
    import typer
    from typer.testing import CliRunner

    from ridecast.commands import data

    app = typer.Typer()
    data.register(app)
    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(app, ["simulate", "--start", "2025-03-04T08:00", "--hours", "0.25", "--seed", "3",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) > 300 and "requested" in res.output
    assert json.loads(lines[0])["event_id"].startswith("sim3-20250304-")


def test_bad_arguments_fail_before_reading(csv_file: Path):
    with pytest.raises(IngestError, match="period"):
        map_file(csv_file, time_col="ts", zone_col="station", value_col="count", period="soon")
    with pytest.raises(IngestError, match="tz"):
        map_file(csv_file, time_col="ts", zone_col="station", tz="Mars/Olympus")
