"""TEST DATA: the Trino query suite, and the small known lake it runs over.

The same queries run on a real Trino 476 server and on the embedded engine (DuckDB + sqlglot), and their
normalised results must agree (tests/integration/test_trino_suite.py); benchmarks/trino_vs_embedded.py
times them. A query the embedded engine cannot run names the construct it must reject with
:class:`ridecast.sql.UnsupportedSqlError` (``embedded_rejects``); the README lists those.

Kinds of queries are the ones users write: catalog browsing, time bucketing in a local time zone, window
functions, arrays and maps, JSON on the raw (bronze) payloads, approximate aggregates, FILTER, UNNEST,
Iceberg metadata tables and time travel. ``{s1}``/``{s2}`` (the two snapshot ids of gold.zone_features)
and ``{ts1}`` (a timestamp literal at the first snapshot) are filled in from the lake.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from iceberg_catalog.catalog import ensure_tables, load_table, open_catalog
from ridecast.config import Settings

__all__ = ["LAKE_ZONES", "Lake", "SuiteQuery", "SUITE", "build_lake", "normalise"]

LAKE_ZONES = ["ANG MO KIO", "BEDOK", "CLEMENTI", "TAMPINES"]
LAKE_START = "2024-05-01T00:00:00Z"


@dataclass(frozen=True)
class Lake:
    s1: int  # gold.zone_features after day 1-2
    s2: int  # ... after day 3
    ts1: str  # a Trino TIMESTAMP literal (UTC) at the first snapshot's commit

    def fill(self, sql: str) -> str:
        return sql.replace("{s1}", str(self.s1)).replace("{s2}", str(self.s2)).replace("{ts1}", self.ts1)


@dataclass(frozen=True)
class SuiteQuery:
    name: str
    sql: str
    embedded_rejects: str | None = None  # construct named by UnsupportedSqlError on the embedded engine
    ordered: bool = True  # compare rows in order (the query has a total ORDER BY)


def build_lake(settings: Settings) -> Lake:
    """Two commits of silver/gold from a seeded generator (days 1-2, then day 3) and their raw JSON in bronze."""
    from tests.lake_fixtures import synthetic_events, write_lake

    ensure_tables(open_catalog(settings))
    events = synthetic_events(LAKE_ZONES, LAKE_START, 3, seed=7, base_per_hour=4.0)
    cut = pd.Timestamp(LAKE_START) + pd.Timedelta(days=2)
    first, second = events[events["event_time"] < cut], events[events["event_time"] >= cut]
    silver1, _ = write_lake(settings, first)
    gold = load_table(open_catalog(settings), "gold.zone_features")
    s1 = gold.current_snapshot().snapshot_id
    ts1_ms = gold.current_snapshot().timestamp_ms
    silver2, _ = write_lake(settings, second)
    gold.refresh()
    s2 = gold.current_snapshot().snapshot_id
    silver = pd.concat([silver1, silver2], ignore_index=True)
    bronze = load_table(open_catalog(settings), "bronze.trip_events")
    payloads = [
        json.dumps({"event_id": r.event_id, "event_type": r.event_type, "pickup_zone": r.pickup_zone,
                    "event_time_ms": int(r.event_time.timestamp() * 1000),
                    "fare": None if pd.isna(r.fare) else round(float(r.fare), 2),
                    "tags": ["app", "card"] if i % 3 else ["street"]})
        for i, r in enumerate(silver.itertuples())
    ]
    bronze.append(pa.Table.from_pydict(
        {"payload": payloads, "source": ["kafka:trip-events/0"] * len(silver),
         "source_offset": np.arange(len(silver), dtype="int64"),
         "received_at": silver["event_time"].dt.as_unit("us"), "event_id": silver["event_id"]},
        schema=bronze.schema().as_arrow()))
    ts1 = dt.datetime.fromtimestamp(ts1_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return Lake(s1, s2, f"TIMESTAMP '{ts1} UTC'")


Q = SuiteQuery
SUITE: list[SuiteQuery] = [
    # -- browsing the catalog
    Q("show_schemas", "SHOW SCHEMAS", ordered=False),
    Q("show_tables", "SHOW TABLES FROM gold", ordered=False),
    Q("show_columns", "SHOW COLUMNS FROM gold.zone_features"),
    Q("describe", "DESCRIBE silver.trip_events"),
    Q("information_schema_tables",
      "SELECT table_schema, table_name FROM information_schema.tables "
      "WHERE table_schema IN ('gold', 'silver') ORDER BY 1, 2"),
    Q("information_schema_columns",
      "SELECT column_name, data_type FROM information_schema.columns "
      "WHERE table_schema = 'gold' AND table_name = 'zone_features' ORDER BY ordinal_position"),
    # -- filters and aggregates
    Q("count_all", "SELECT count(*) AS n FROM silver.trip_events"),
    Q("count_by_type", "SELECT event_type, count(*) AS n FROM silver.trip_events GROUP BY 1 ORDER BY 1"),
    Q("integer_division",
      "SELECT zone, sum(requests) / count(*) AS per_window FROM gold.zone_features "
      "WHERE window_minutes = 60 GROUP BY zone ORDER BY zone"),
    Q("avg_round", "SELECT pickup_zone, round(avg(fare), 2) AS fare FROM silver.trip_events "
                   "WHERE fare IS NOT NULL GROUP BY 1 ORDER BY 1"),
    Q("filter_clause",
      "SELECT pickup_zone, count(*) FILTER (WHERE event_type = 'cancelled') AS cancelled, "
      "count(*) FILTER (WHERE fare > 20) AS dear FROM silver.trip_events GROUP BY 1 ORDER BY 1"),
    Q("having", "SELECT zone, max(requests) AS peak FROM gold.zone_features GROUP BY zone "
                "HAVING max(requests) > 3 ORDER BY peak DESC, zone"),
    Q("case_when", "SELECT CASE WHEN surge_mean >= 1.5 THEN 'high' WHEN surge_mean >= 1.0 THEN 'normal' "
                   "ELSE 'none' END AS band, count(*) AS n FROM gold.zone_features GROUP BY 1 ORDER BY 1"),
    Q("coalesce_nullif", "SELECT count(*) AS n, sum(coalesce(fare, 0)) > 0 AS paid, "
                         "count(nullif(event_type, 'requested')) AS not_requested FROM silver.trip_events"),
    Q("approx_distinct", "SELECT approx_distinct(pickup_zone) AS zones, approx_distinct(event_type) AS kinds "
                         "FROM silver.trip_events"),
    Q("approx_percentile",
      "SELECT zone, approx_percentile(requests, 0.5) AS p50 FROM gold.zone_features "
      "WHERE window_minutes = 15 AND requests BETWEEN 1 AND 1 GROUP BY zone ORDER BY zone"),
    Q("count_distinct", "SELECT count(DISTINCT pickup_zone) AS zones, count(DISTINCT event_type) AS kinds "
                        "FROM silver.trip_events"),
    Q("like_in", "SELECT count(*) AS n FROM silver.trip_events WHERE pickup_zone LIKE 'B%' "
                 "OR pickup_zone IN ('CLEMENTI')"),
    # -- dates and times
    Q("date_trunc_hour",
      "SELECT date_trunc('hour', event_time) AS hour, count(*) AS n FROM silver.trip_events "
      "GROUP BY 1 ORDER BY 1 LIMIT 5"),
    Q("date_trunc_day_local",
      "SELECT date_trunc('day', event_time AT TIME ZONE 'Asia/Singapore') AS local_day, count(*) AS n "
      "FROM silver.trip_events GROUP BY 1 ORDER BY 1"),
    Q("cast_date", "SELECT CAST(event_time AS date) AS day, count(*) AS n FROM silver.trip_events "
                   "GROUP BY 1 ORDER BY 1"),
    Q("extract_hour_local",
      "SELECT hour(event_time AT TIME ZONE 'Asia/Singapore') AS h, count(*) AS n FROM silver.trip_events "
      "GROUP BY 1 ORDER BY n DESC, h LIMIT 3"),
    Q("day_of_week", "SELECT day_of_week(event_time) AS dow, count(*) AS n FROM silver.trip_events "
                     "GROUP BY 1 ORDER BY 1"),
    Q("date_format", "SELECT date_format(window_end, '%Y-%m-%d %H:%i') AS label FROM gold.zone_features "
                     "ORDER BY window_end, zone LIMIT 3"),
    Q("format_datetime", "SELECT format_datetime(window_end, 'yyyy-MM-dd HH:mm') AS label FROM gold.zone_features "
                         "ORDER BY window_end, zone LIMIT 3"),
    Q("date_diff", "SELECT date_diff('minute', min(event_time), max(event_time)) AS span_min "
                   "FROM silver.trip_events"),
    Q("date_add_interval",
      "SELECT count(*) AS n FROM silver.trip_events WHERE event_time >= from_iso8601_timestamp('2024-05-01T00:00:00Z') "
      "AND event_time < date_add('hour', 6, from_iso8601_timestamp('2024-05-01T00:00:00Z'))"),
    Q("interval_arithmetic",
      "SELECT count(*) AS n FROM gold.zone_features WHERE window_end - window_start = INTERVAL '15' MINUTE"),
    # -- window functions
    Q("rank_busiest",
      "SELECT zone, total, rank() OVER (ORDER BY total DESC) AS rnk FROM "
      "(SELECT zone, sum(requests) AS total FROM gold.zone_features WHERE window_minutes = 60 GROUP BY zone) "
      "ORDER BY rnk, zone"),
    Q("running_total",
      "SELECT day, n, sum(n) OVER (ORDER BY day) AS running FROM "
      "(SELECT CAST(event_time AS date) AS day, count(*) AS n FROM silver.trip_events GROUP BY 1) ORDER BY day"),
    Q("lag_lead",
      "SELECT window_end, requests, lag(requests) OVER (ORDER BY window_end) AS prev, "
      "lead(requests, 2) OVER (ORDER BY window_end) AS next2 FROM gold.zone_features "
      "WHERE zone = 'BEDOK' AND window_minutes = 60 ORDER BY window_end LIMIT 8"),
    Q("row_number_top",
      "SELECT zone, window_end, requests FROM (SELECT zone, window_end, requests, row_number() OVER "
      "(PARTITION BY zone ORDER BY requests DESC, window_end) AS rn FROM gold.zone_features "
      "WHERE window_minutes = 15) WHERE rn = 1 ORDER BY zone"),
    Q("moving_average",
      "SELECT window_end, round(avg(requests) OVER (ORDER BY window_end ROWS BETWEEN 3 PRECEDING AND CURRENT ROW), 4) "
      "AS ma FROM gold.zone_features WHERE zone = 'CLEMENTI' AND window_minutes = 15 ORDER BY window_end LIMIT 10"),
    # -- arrays, maps, UNNEST
    Q("array_agg_sorted",
      "SELECT array_agg(DISTINCT event_type ORDER BY event_type) AS kinds FROM silver.trip_events"),
    Q("cardinality_contains",
      "SELECT cardinality(array_agg(DISTINCT pickup_zone)) AS n, "
      "contains(array_agg(pickup_zone), 'BEDOK') AS has_bedok FROM silver.trip_events"),
    Q("unnest_array",
      "SELECT x, x * 2 AS doubled FROM UNNEST(ARRAY[3, 1, 2]) AS t(x) ORDER BY x"),
    Q("unnest_cross_join",
      "SELECT z, count(*) AS n FROM silver.trip_events CROSS JOIN UNNEST(ARRAY[pickup_zone]) AS u(z) "
      "GROUP BY z ORDER BY z"),
    Q("map_literal", "SELECT element_at(MAP(ARRAY['a', 'b'], ARRAY[1, 2]), 'b') AS b"),
    Q("map_agg",
      "SELECT map_agg(event_type, n) AS by_type FROM "
      "(SELECT event_type, count(*) AS n FROM silver.trip_events GROUP BY 1)"),
    Q("map_agg_element",
      "SELECT element_at(m, 'completed') AS completed FROM (SELECT map_agg(event_type, n) AS m FROM "
      "(SELECT event_type, count(*) AS n FROM silver.trip_events GROUP BY 1))"),
    # -- JSON over the raw payloads
    Q("json_extract_scalar_group",
      "SELECT json_extract_scalar(payload, '$.event_type') AS kind, count(*) AS n FROM bronze.trip_events "
      "GROUP BY 1 ORDER BY 1"),
    Q("json_extract_scalar_cast",
      "SELECT round(sum(CAST(json_extract_scalar(payload, '$.fare') AS double)), 2) AS fares "
      "FROM bronze.trip_events"),
    Q("json_array_length",
      "SELECT json_array_length(json_extract(payload, '$.tags')) AS tags, count(*) AS n FROM bronze.trip_events "
      "GROUP BY 1 ORDER BY 1"),
    Q("json_parse_format",
      "SELECT json_format(json_parse('{\"a\": 1}')) AS j"),
    # -- joins and CTEs
    Q("join_silver_gold",
      "WITH z AS (SELECT pickup_zone AS zone, count(*) AS events FROM silver.trip_events GROUP BY 1) "
      "SELECT z.zone, z.events, max(g.requests) AS peak FROM z JOIN gold.zone_features g ON g.zone = z.zone "
      "GROUP BY z.zone, z.events ORDER BY z.zone"),
    # -- Iceberg metadata tables and time travel
    Q("snapshots", 'SELECT operation, parent_id IS NULL AS first FROM gold."zone_features$snapshots" '
                   "ORDER BY committed_at"),
    Q("files", 'SELECT sum(record_count) AS rows, count(*) > 0 AS some_files FROM gold."zone_features$files"'),
    Q("partitions", 'SELECT sum(record_count) AS rows FROM gold."zone_features$partitions"'),
    Q("history", 'SELECT count(*) AS n FROM gold."zone_features$history"'),
    Q("version_as_of", "SELECT count(*) AS n FROM gold.zone_features FOR VERSION AS OF {s1}"),
    Q("version_as_of_latest", "SELECT count(*) AS n FROM gold.zone_features FOR VERSION AS OF {s2}"),
    Q("timestamp_as_of", "SELECT count(*) AS n FROM gold.zone_features FOR TIMESTAMP AS OF {ts1}"),
    # -- more functions users reach for
    Q("transform_lambda", "SELECT transform(ARRAY[1, 2, 3], x -> x * 10) AS a"),
    Q("histogram", "SELECT histogram(event_type) AS h FROM silver.trip_events"),
    Q("regexp_extract", "SELECT regexp_extract(pickup_zone, '^(\\w+)', 1) AS first_word, count(*) AS n "
                        "FROM silver.trip_events GROUP BY 1 ORDER BY 1"),
    Q("array_join_ordered", "SELECT array_join(array_agg(DISTINCT event_type ORDER BY event_type), ',') AS kinds "
                            "FROM silver.trip_events"),
    Q("array_functions", "SELECT array_sort(ARRAY[3, 1, 2]) AS s, array_distinct(ARRAY[3, 1, 3, 2]) AS d, "
                         "slice(ARRAY[1, 2, 3, 4], 2, 2) AS sl"),
    Q("date_trunc_of_date", "SELECT date_trunc('month', CAST(event_time AS date)) AS month, count(*) AS n "
                            "FROM silver.trip_events GROUP BY 1 ORDER BY 1"),
    Q("format_printf", "SELECT format('%s: %d events', pickup_zone, count(*)) AS line FROM silver.trip_events "
                       "GROUP BY pickup_zone ORDER BY 1"),
    # -- Trino-only: the embedded engine refuses these with an error naming the construct
    Q("show_create_table", "SHOW CREATE TABLE gold.zone_features", embedded_rejects="SHOW statement"),
    Q("to_iso8601", "SELECT to_iso8601(max(window_end)) AS t FROM gold.zone_features", embedded_rejects="to_iso8601"),
    Q("with_timezone", "SELECT with_timezone(TIMESTAMP '2024-05-01 08:00', 'Asia/Singapore') AS t",
      embedded_rejects="with_timezone"),
    Q("metadata_log_entries", 'SELECT count(*) AS n FROM gold."zone_features$metadata_log_entries"',
      embedded_rejects=r"zone_features\$metadata_log_entries"),
    Q("version_as_of_branch", "SELECT count(*) AS n FROM gold.zone_features FOR VERSION AS OF 'main'",
      embedded_rejects="branch or tag"),
    Q("match_recognize",
      "SELECT zone, n FROM (SELECT zone, window_end, requests FROM gold.zone_features WHERE window_minutes = 60) "
      "MATCH_RECOGNIZE (PARTITION BY zone ORDER BY window_end MEASURES count(*) AS n ONE ROW PER MATCH "
      "PATTERN (up+) DEFINE up AS requests > 5) ORDER BY zone, n LIMIT 3", embedded_rejects="MATCH_RECOGNIZE"),
]


def _norm_value(v: object) -> object:
    """One value in a form both engines agree on: wall-clock ISO times, 9 significant digits, sorted maps."""
    if isinstance(v, float):
        return None if math.isnan(v) else float(f"{v:.9g}")
    if isinstance(v, decimal.Decimal):
        return float(f"{float(v):.9g}")
    if isinstance(v, dt.datetime):
        # wall-clock time in the value's own zone: Trino's `ts AT TIME ZONE z` keeps the zone, DuckDB's
        # returns the local timestamp without it (README: embedded-engine differences)
        v = v.replace(tzinfo=None)
        return v.isoformat(sep=" ")
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dict):
        return tuple(sorted((str(k), _norm_value(x)) for k, x in v.items()))
    if isinstance(v, list):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):  # Arrow map as (key, value) pairs
            return tuple(sorted((str(k), _norm_value(x)) for k, x in v))
        return tuple(_norm_value(x) for x in v)
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    return str(v)


def normalise(table: pa.Table, *, ordered: bool) -> list[tuple]:
    """Rows as tuples of normalised values (column names are compared separately)."""
    rows = [tuple(_norm_value(v) for v in row.values()) for row in table.to_pylist()]
    return rows if ordered else sorted(rows, key=repr)
