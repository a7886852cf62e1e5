"""SQL over the lakehouse: Trino-dialect queries on real Iceberg tables through the embedded DuckDB engine
(both catalog backends), pure translation checks, the CLI, and the Trino engine against the real server."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from iceberg_catalog.catalog import ensure_tables, open_catalog
from ridecast.config import Settings
from ridecast.sql import ReadOnlySqlError, SqlError, UnsupportedSqlError, run_sql, translate

pytestmark = pytest.mark.integration

DAY1 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
ZONE_REQUESTS = {"ANG MO KIO": 10, "BEDOK": 5, "CLEMENTI": 1}  # per window, constant: exact expectations


def _rows(table, start: dt.datetime, windows: int) -> pa.Table:
    rows = []
    for i in range(windows):
        end = start + dt.timedelta(minutes=5 * i + 15)
        for zone, req in ZONE_REQUESTS.items():
            rows.append(dict(zone=zone, window_minutes=15, window_start=end - dt.timedelta(minutes=15), window_end=end,
                             requests=req, completions=req - 1, cancellations=1, fare_sum=req * 12.5, fare_mean=12.5,
                             fare_max=20.0, wait_mean=90.0, wait_max=300.0, surge_mean=1.1, events=req + 1,
                             computed_at=end))
    return pa.Table.from_pylist(rows, schema=table.schema().as_arrow())


@pytest.fixture
def lake(catalog_settings: Settings):
    """gold.zone_features with two commits: 24 windows on day 1, then 12 windows on day 2."""
    tables = ensure_tables(open_catalog(catalog_settings))
    t = tables["gold.zone_features"]
    t.append(_rows(t, DAY1, 24), snapshot_properties={"ridecast.source-files": "part-0001.json"})
    s1 = t.current_snapshot().snapshot_id
    t.append(_rows(t, DAY1 + dt.timedelta(days=1), 12), snapshot_properties={"ridecast.source-files": "part-0002.json"})
    s2 = t.current_snapshot().snapshot_id
    return catalog_settings, t, s1, s2


BUSIEST = """
WITH hourly AS (
    SELECT zone,
           date_trunc('hour', window_end) AS hour,
           sum(requests) AS requests,
           sum(requests) / count(*) AS per_window,
           approx_percentile(requests, 0.5) AS p50
    FROM gold.zone_features
    WHERE window_minutes = 15
      AND window_end >= from_iso8601_timestamp('2024-05-01T08:00:00Z')
      AND window_end < from_iso8601_timestamp('2024-05-01T08:00:00Z') + INTERVAL '1' HOUR
    GROUP BY 1, 2
)
SELECT zone, CAST(hour AS varchar) AS hour_label, requests, per_window, p50,
       rank() OVER (ORDER BY requests DESC) AS rnk
FROM hourly
ORDER BY rnk
"""


def test_busiest_zones_in_a_time_range(lake):
    settings, _, _, _ = lake
    res = run_sql(BUSIEST, settings)
    assert res.engine == "embedded"
    rows = res.to_pylist()
    # windows ending in [08:00, 09:00): ends at 08:15 + 5i for i = 0..8 -> 9 windows, all in hour 08
    assert [r["zone"] for r in rows] == ["ANG MO KIO", "BEDOK", "CLEMENTI"]
    assert [r["requests"] for r in rows] == [9 * 10, 9 * 5, 9 * 1]
    assert [r["per_window"] for r in rows] == [10, 5, 1]  # Trino integer division, not 10.0 / 2.5-style
    assert [r["p50"] for r in rows] == [10, 5, 1]
    assert [r["rnk"] for r in rows] == [1, 2, 3]
    assert all(r["hour_label"].startswith("2024-05-01 08:00:00") for r in rows)
    assert res.columns == ["zone", "hour_label", "requests", "per_window", "p50", "rnk"]
    assert pa.types.is_integer(res.table.schema.field("requests").type)  # bigint like Trino, not HUGEINT


def test_fully_qualified_and_unqualified_names_agree(lake):
    settings, _, _, _ = lake
    a = run_sql("SELECT count(*) AS n FROM iceberg.gold.zone_features", settings).to_pylist()
    b = run_sql("SELECT count(*) AS n FROM gold.zone_features", settings).to_pylist()
    assert a == b == [{"n": (24 + 12) * 3}]


def test_metadata_tables(lake):
    settings, table, s1, s2 = lake
    snaps = run_sql(
        'SELECT snapshot_id, operation, summary[\'ridecast.source-files\'] AS src '
        'FROM gold."zone_features$snapshots" ORDER BY committed_at', settings
    ).to_pylist()
    assert [(r["snapshot_id"], r["operation"], r["src"]) for r in snaps] == [
        (s1, "append", "part-0001.json"), (s2, "append", "part-0002.json")
    ]
    files = run_sql('SELECT sum(record_count) AS n, count(*) AS files FROM gold."zone_features$files"', settings)
    assert files.to_pylist()[0]["n"] == 108
    assert files.to_pylist()[0]["files"] == len(table.inspect.files())
    hist = run_sql('SELECT snapshot_id, parent_id FROM gold."zone_features$history" ORDER BY made_current_at', settings)
    assert [(r["snapshot_id"], r["parent_id"]) for r in hist.to_pylist()] == [(s1, None), (s2, s1)]
    parts = run_sql('SELECT record_count FROM gold."zone_features$partitions" ORDER BY record_count', settings)
    assert [r["record_count"] for r in parts.to_pylist()] == [36, 72]  # one row per day partition


def test_time_travel_sees_each_snapshot(lake):
    settings, table, s1, s2 = lake
    q = "SELECT count(*) AS n FROM gold.zone_features FOR VERSION AS OF {} WHERE zone = 'BEDOK'"
    assert run_sql(q.format(s1), settings).to_pylist() == [{"n": 24}]
    assert run_sql(q.format(s2), settings).to_pylist() == [{"n": 36}]
    ts1 = table.snapshot_by_id(s1).timestamp_ms
    literal = dt.datetime.fromtimestamp(ts1 / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    expected = table.scan(snapshot_id=table.snapshot_as_of_timestamp(ts1).snapshot_id).count()
    got = run_sql(f"SELECT count(*) AS n FROM gold.zone_features FOR TIMESTAMP AS OF TIMESTAMP '{literal} UTC'",
                  settings)
    assert got.to_pylist() == [{"n": expected}]
    with pytest.raises(SqlError, match="no snapshot 1;"):
        run_sql(q.format(1), settings)


def test_new_commits_are_visible_to_the_next_query(lake):
    settings, table, _, _ = lake
    q = "SELECT count(*) AS n FROM gold.zone_features"
    assert run_sql(q, settings).to_pylist() == [{"n": 108}]
    table.append(_rows(table, DAY1 + dt.timedelta(days=2), 1))
    assert run_sql(q, settings).to_pylist() == [{"n": 111}]


def test_table_without_snapshot_returns_no_rows_with_its_columns(catalog_settings):
    ensure_tables(open_catalog(catalog_settings))
    res = run_sql("SELECT * FROM ops.dead_letters", catalog_settings)
    assert res.num_rows == 0
    assert res.columns == ["reason", "payload", "payload_bytes", "source", "source_offset", "received_at", "event_id"]
    agg = run_sql("SELECT count(*) AS n, max(fare) AS m FROM silver.trip_events", catalog_settings)
    assert agg.to_pylist() == [{"n": 0, "m": None}]


def test_unsupported_construct_and_ddl_are_clear_errors(lake):
    settings, table, _, s2 = lake
    with pytest.raises(UnsupportedSqlError, match=r"approx_set.*approx_distinct"):
        run_sql("SELECT approx_set(zone) FROM gold.zone_features", settings)
    for stmt in ("CREATE TABLE gold.x (a integer)", "INSERT INTO gold.zone_features SELECT * FROM gold.zone_features",
                 "DELETE FROM gold.zone_features", "DROP TABLE gold.zone_features"):
        with pytest.raises(ReadOnlySqlError, match="read-only"):
            run_sql(stmt, settings)
    table.refresh()
    assert table.current_snapshot().snapshot_id == s2
    with pytest.raises(SqlError, match="gold.nope"):
        run_sql("SELECT * FROM gold.nope", settings)


# -- pure translation ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_translation_rewrites_lakehouse_constructs():
    t = translate('SELECT * FROM gold."zone_features$snapshots"')
    assert 'iceberg.gold."zone_features$snapshots"' in t.sql and t.metadata[0].kind == "snapshots"
    t = translate("SELECT count(*) FROM gold.zone_features FOR VERSION AS OF 42 WHERE zone = 'A'")
    assert "FOR VERSION" not in t.sql and t.time_travel[0].value_sql == "42"
    assert 'iceberg.gold."zone_features$tt0" AS zone_features' in t.sql
    t = translate("SELECT approx_percentile(x, 0.9), CAST(y AS varchar) FROM ridecast_x.t")
    assert "APPROX_QUANTILE" in t.sql and "iceberg.ridecast_x.t" in t.sql
    assert translate("SELECT 7 / 2 AS q").sql.count("TRUNC") == 1  # Trino's integer division is kept
    with pytest.raises(UnsupportedSqlError, match=r"\$bogus"):
        translate('SELECT * FROM gold."zone_features$bogus"')
    with pytest.raises(ReadOnlySqlError, match="INSERT"):
        translate("INSERT INTO gold.t VALUES (1)")
    with pytest.raises(SqlError, match="one statement"):
        translate("SELECT 1; SELECT 2")
    with pytest.raises(SqlError, match="syntax error"):
        translate("SELEC 1")


# -- CLI ----------------------------------------------------------------------------------------------
def _cli() -> typer.Typer:
    from ridecast.commands import sql as sql_cmd

    app = typer.Typer()
    sql_cmd.register(app)
    return app


def test_cli_csv_json_and_errors(lake, tmp_path):
    runner = CliRunner()
    app = _cli()
    q = "SELECT zone, sum(requests) AS requests FROM gold.zone_features GROUP BY zone ORDER BY zone"
    out = runner.invoke(app, ["sql", q, "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["zone,requests", "ANG MO KIO,360", "BEDOK,180", "CLEMENTI,36"]
    out = runner.invoke(app, ["sql", q, "--format", "json"])
    assert json.loads(out.stdout) == [{"zone": "ANG MO KIO", "requests": 360}, {"zone": "BEDOK", "requests": 180},
                                      {"zone": "CLEMENTI", "requests": 36}]
    target = tmp_path / "out.jsonl"
    out = runner.invoke(app, ["sql", "SELECT window_end FROM gold.zone_features ORDER BY window_end LIMIT 1",
                              "--format", "jsonl", "--output", str(target)])
    assert out.exit_code == 0, out.output
    lines = target.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"window_end": "2024-05-01T08:15:00+00:00"}]
    bad = runner.invoke(app, ["sql", "DROP TABLE gold.zone_features"])
    assert bad.exit_code == 2 and "read-only" in bad.stderr and "Traceback" not in bad.output
    assert len(bad.stderr.strip().splitlines()) == 1
    tables = runner.invoke(app, ["tables"], env={"COLUMNS": "200"})
    assert tables.exit_code == 0, tables.output
    line = next(ln for ln in tables.stdout.splitlines() if "gold.zone_features" in ln)
    assert "108" in line and " 2 " in line  # rows, snapshots


# -- Trino engine, against the real server ---------------------------------------------------------
def test_trino_engine_sends_sql_untranslated(trino_settings):
    """The real Trino 476 (session fixture) reads what pyiceberg wrote, on each catalog backend; the SQL goes
    as written (constructs the embedded engine rewrites run natively), with user and catalog from settings."""
    t = ensure_tables(open_catalog(trino_settings))["gold.zone_features"]
    t.append(_rows(t, DAY1, 24))
    s1 = t.current_snapshot().snapshot_id
    t.append(_rows(t, DAY1 + dt.timedelta(days=1), 12))
    sql = ("SELECT zone, format_datetime(min(window_end), 'yyyy') AS y, count(*) AS n FROM gold.zone_features "
           f"FOR VERSION AS OF {s1} GROUP BY zone ORDER BY zone")
    res = run_sql(sql, trino_settings)  # auto: sql.trino_url is set
    assert res.engine == "trino"
    assert res.sql_sent == sql  # untranslated
    assert res.to_pylist() == [{"zone": z, "y": "2024", "n": 24} for z in sorted(ZONE_REQUESTS)]
    assert res.table.schema.field("n").type == pa.int64()
    who = run_sql("SELECT current_user AS u, current_catalog AS c", trino_settings).to_pylist()
    assert who == [{"u": trino_settings.sql.trino_user, "c": trino_settings.sql.trino_catalog}]
    assert run_sql("SELECT count(*) AS n FROM gold.zone_features", trino_settings).to_pylist() == [{"n": 108}]
    with pytest.raises(SqlError, match="TABLE_NOT_FOUND"):
        run_sql("SELECT * FROM gold.nope", trino_settings)
