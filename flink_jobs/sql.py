"""Builds the feature job's Flink SQL from a job spec: one function per statement, no Flink imports.

Kept apart from the PyFlink driver so the app environment can render and unit-test the SQL without a JVM,
and so the validation rules come from ``ridecast.events`` (the single contract) instead of being written a
second time by hand.

The lake is written by Iceberg's own Flink sink (``iceberg-flink-runtime``): :func:`catalog_ddl` registers the
same JDBC catalog pyiceberg uses, and the INSERTs go straight into its tables, committed exactly once at each
checkpoint (or at the end of a bounded run) by the sink's single committer per table.

Why raw payloads instead of the json format: the json format drops unparseable messages (or fails the job), and
a message we cannot parse must land in the dead letters with its reason. The per-event work that SQL
expressions did slowly (parse and check, the source's event time) is done by two small Java scalar functions in
``flink_jobs/udf`` that the SQL calls (no Python runs per record; Python UDFs run ~7x slower here, see
PLATFORM.md). They carry no rules of their own: the contract reaches them as
literals rendered here, and ``tests/test_job_contract.py`` holds the job to the Python oracle message by message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ridecast.events import EVENT_TIME_IN_TEXT, EVENT_TYPES, FIELDS, HEARTBEAT, MAX_ID_LENGTH, SCHEMA_VERSION, Reason

__all__ = ["ICEBERG_SINKS", "JobSpec", "JobStatements", "catalog_ddl", "statements"]


@dataclass
class JobSpec:
    """Everything the job needs, serialised to JSON by the app side (ridecast.stack.pipeline)."""

    mode: str  # "stream" (Kafka source, unbounded) | "batch" (JSONL files, bounded)
    zones: list[str]
    window_minutes: list[int]
    slide_minutes: int
    watermark_delay_s: int
    max_future_skew_s: int
    max_event_age_days: int
    max_payload_bytes: int
    # the Iceberg catalog: its name (the same on every side: the JDBC catalog keys its rows by it) and the Flink
    # catalog options (catalog-impl, uri, warehouse, jdbc.*), rendered by iceberg_catalog.catalog.flink_catalog_options
    catalog_name: str = "ridecast"
    catalog_options: dict[str, str] = field(default_factory=dict)
    job_id: str = ""  # batch: a fixed Flink job id (32 hex), so Iceberg's committer recognises a rerun's commits
    bootstrap_servers: str = ""
    events_topic: str = ""
    features_topic: str = ""
    dead_letter_topic: str = ""
    consumer_group: str = ""
    startup_mode: str = "group-offsets"
    idle_timeout_s: int = 30
    input_path: str = ""  # batch mode
    source_name: str = ""  # batch mode: recorded in bronze.source
    now_ms: int | None = None  # batch mode: the wall clock the future/too-old checks use
    jars: list[str] = field(default_factory=list)
    checkpoint_dir: str = ""
    checkpoint_interval_s: int = 10
    restore_path: str = ""
    parallelism: int = 1
    # the job's own restart strategy (settings.flink.restart_*), which wins over the cluster's
    restart_strategy: str = "fixed-delay"  # or exponential-delay
    restart_attempts: int = 3
    restart_delay_s: int = 2
    restart_max_delay_s: int = 60  # exponential-delay only


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _now_ms(spec: JobSpec) -> str:
    # Streaming: the wall clock per record. Batch: the spec's fixed instant, so a rerun decides identically.
    return str(spec.now_ms) if spec.now_ms is not None else "(CAST(UNIX_TIMESTAMP() AS BIGINT) * 1000)"


def event_time_expr(spec: JobSpec) -> str:
    """Event time in ms for the source's watermark, NULL unless plausible: a far-future or absurd timestamp must
    not move the watermark. Read from the text, not parsed, as ``events.event_time_in_text`` does (see
    ``EVENT_TIME_FUNCTION``); the checks refuse an event whose parsed time differs from this one.
    """
    return (f"{EVENT_TIME_FUNCTION}(message, {_q(EVENT_TIME_IN_TEXT)}, {_now_ms(spec)}, "
            f"CAST({spec.max_future_skew_s * 1000} AS BIGINT), "
            f"CAST({spec.max_event_age_days} AS BIGINT) * 86400000)")


def rules_literal(spec: JobSpec) -> str:
    """The contract of ``ridecast.events`` as the JSON literal the job's Java check reads (see ``CHECK_CLASS``).

    The Java class holds no rule of its own, so FIELDS, the reasons and the zones stay defined once, in Python.
    """
    fields = [{"name": f.name, "kind": f.kind, "required": f.required,
               "low": f.low if f.kind == "double" else None, "high": f.high if f.kind == "double" else None,
               "missing": f"{Reason.MISSING}:{f.name}", "wrong_type": f"{Reason.WRONG_TYPE}:{f.name}",
               "out_of_range": f"{Reason.OUT_OF_RANGE}:{f.name}"} for f in FIELDS]
    return json.dumps({
        "fields": fields, "schema_version": SCHEMA_VERSION, "max_id_length": MAX_ID_LENGTH,
        "event_types": [*EVENT_TYPES, HEARTBEAT], "zones": list(spec.zones),
        "max_payload_bytes": spec.max_payload_bytes, "max_future_skew_ms": spec.max_future_skew_s * 1000,
        "max_event_age_ms": spec.max_event_age_days * 86_400_000,
        "reasons": {"invalid_json": Reason.INVALID_JSON, "too_large": Reason.TOO_LARGE,
                    "bad_version": Reason.BAD_VERSION, "id_too_long": Reason.ID_TOO_LONG, "bad_type": Reason.BAD_TYPE,
                    "unknown_zone": Reason.UNKNOWN_ZONE, "future": Reason.FUTURE, "too_old": Reason.TOO_OLD,
                    "checker_error": Reason.CHECKER_ERROR},
    }, separators=(",", ":"), sort_keys=True)


# The job's Java scalar functions (flink_jobs/udf, compiled by scripts/bootstrap.sh into ridecast-udf.jar); both
# take the contract from Python as literals. The same work as Flink SQL expressions cost ~30 us per event: a
# VARIANT parse, a JSON text and a typed value per field and a 40-branch CASE for the checks, and string scans
# for the event time that Flink's codegen repeated up to 10 times (it has no common-subexpression elimination).
# ``ridecast_check``: one streaming JSON parse with every check of ``events.reject_reason`` beside it.
CHECK_FUNCTION = "ridecast_check"
CHECK_CLASS = "ridecast.flink.CheckEvent"
CHECK_FIELDS = ("event_id", "event_time_ms", "event_type", "pickup_zone", "dropoff_zone", "fare", "wait_seconds",
                "surge")  # the function's output row after `reason`, in order; then `payload`
# ``ridecast_event_time``: the source's event time, one regex scan of the text (``events.event_time_in_text``).
EVENT_TIME_FUNCTION = "ridecast_event_time"
EVENT_TIME_CLASS = "ridecast.flink.EventTimeInText"


def function_ddls() -> list[str]:
    return [f"CREATE TEMPORARY FUNCTION IF NOT EXISTS {name} AS {_q(cls)} LANGUAGE JAVA"
            for name, cls in ((CHECK_FUNCTION, CHECK_CLASS), (EVENT_TIME_FUNCTION, EVENT_TIME_CLASS))]


# A guard Flink's optimizer cannot see through. Its calc-merge rule inlines a projection into every expression
# that references it (the check would run once per output column), but it does not duplicate a
# non-deterministic expression that is referenced more than once. ``RAND() < 2`` is always true and costs a few
# nanoseconds; wrapping an expression in it makes the planner compute it once.
_ONCE = "RAND() < 2"


def _once(expr: str, cond: str = "") -> str:
    return f"CASE WHEN {_ONCE}{' AND ' + cond if cond else ''} THEN {expr} END"


def source_ddl(spec: JobSpec) -> str:
    """The raw messages as bytes, as Kafka delivered them: both Java functions read the bytes, and the check
    function hands the payload back as a string over the same bytes. A JFR profile had Flink re-encoding
    Java-String-backed strings char by char at every copy (11% of the task thread); this layout was 3-4%
    faster than a STRING source column in paired 3M-event runs."""
    if spec.mode == "stream":
        columns = """
  message BYTES,
  kafka_topic STRING METADATA FROM 'topic' VIRTUAL,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,"""
        opts = {
            "connector": "kafka",
            "topic": spec.events_topic,
            "properties.bootstrap.servers": spec.bootstrap_servers,
            "properties.group.id": spec.consumer_group,
            "properties.auto.offset.reset": "earliest",
            "scan.startup.mode": spec.startup_mode,
            "format": "raw",
            # Tansu: the first JoinGroup waits ~session_timeout/2 (PLATFORM.md)
            "properties.session.timeout.ms": "6000",
            "properties.heartbeat.interval.ms": "1000",
            "scan.watermark.idle-timeout": f"{spec.idle_timeout_s} s",
        }
    else:
        columns = """
  message BYTES,
  file_path STRING NOT NULL METADATA FROM 'file.path' VIRTUAL,"""
        opts = {"connector": "filesystem", "path": spec.input_path, "format": "raw"}
    with_ = ",\n  ".join(f"{_q(k)} = {_q(v)}" for k, v in opts.items())
    return f"""CREATE TEMPORARY TABLE raw_events ({columns}
  event_ts AS TO_TIMESTAMP_LTZ({event_time_expr(spec)}, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '{spec.watermark_delay_s}' SECOND
) WITH (
  {with_}
)"""


def parsed_views(spec: JobSpec) -> list[str]:
    """Every message once, checked once, with its source coordinates and its reason (lateness is judged in the
    shared ``checked``).

    The Java check runs once per message (behind the ``_ONCE`` guard) and refuses an oversized message without
    parsing it; then the SQL checks that the source's event time, read from the text for the watermark, is the
    event's own: the windows use the former, so a message whose text carries another
    ``event_time_ms`` first (a nested one) is refused as ambiguous, as ``events.reject_reason`` does.
    """
    if spec.mode == "stream":
        src = "CONCAT('kafka:', kafka_topic, '/', CAST(kafka_partition AS STRING))"
        off = "kafka_offset"
    else:
        src = f"{_q('file:' + spec.source_name)}"
        off = "CAST(NULL AS BIGINT)"
    # batch: a plain timestamp (a bounded input has no rowtime to keep, and the planner rejects one in a view)
    ts = "event_ts" if spec.mode == "stream" else "CAST(event_ts AS TIMESTAMP_LTZ(3)) AS event_ts"
    check = f"{CHECK_FUNCTION}(message, {_now_ms(spec)}, {_q(rules_literal(spec))})"
    values = ",\n  ".join(f"p.r.{name} AS v_{name}" for name in CHECK_FIELDS)
    reason = f"""CASE
    WHEN p.r.payload IS NULL THEN {_q(Reason.INVALID_JSON)}  -- a Kafka tombstone
    WHEN p.r.reason IS NOT NULL THEN p.r.reason
    WHEN event_ts IS NULL OR event_ts <> TO_TIMESTAMP_LTZ(p.r.event_time_ms, 3) THEN {_q(Reason.AMBIGUOUS_TIME)}
  END"""
    return [
        f"""CREATE TEMPORARY VIEW parsed AS
SELECT
  {src} AS source, {off} AS source_offset, CURRENT_TIMESTAMP AS received_at, {ts}, {_once(check)} AS r
FROM raw_events""",
        f"""CREATE TEMPORARY VIEW checked_raw AS
SELECT p.r.payload AS payload, source, source_offset, received_at, event_ts,
  {values},
  {reason} AS reason
FROM parsed AS p""",
    ]


def shared_selects(spec: JobSpec) -> list[tuple[str, str]]:
    """The job's shared tables, in order: ``(name, SELECT)``, each registered as a Table object (see JobStatements).

    ``checked``: every message once, with its reason and lateness (judged against the watermark the source has
    emitted: a valid event is late when the first window it belongs to has already fired). ``valid_events`` (no
    payload) feeds silver and ``zone_slices`` (see ``slices_query``), the windows' one aggregation per event,
    ``rejected`` the dead letters. Filtering and narrowing once here
    matters: Flink hands every branch of a shared node its own copy of the row, payload included, before the
    branch's own filter runs.
    """
    slide_ms = spec.slide_minutes * 60_000
    late = (f"CASE WHEN CURRENT_WATERMARK(event_ts) IS NOT NULL AND v_event_type <> '{HEARTBEAT}' AND "
            f"TO_TIMESTAMP_LTZ((v_event_time_ms / {slide_ms} + 1) * {slide_ms} - 1, 3) "
            f"<= CURRENT_WATERMARK(event_ts) THEN 1 ELSE 0 END") if spec.mode == "stream" else "0"
    checked = f"""SELECT payload, source, source_offset, received_at, reason,
  event_ts AS event_time, v_event_time_ms, v_event_id, v_event_type,
  v_pickup_zone, v_dropoff_zone, v_fare, v_wait_seconds, v_surge,
  {late} AS is_late
FROM checked_raw"""
    valid = f"""SELECT
  v_event_id AS event_id, event_time AS event_ts, v_event_type AS event_type,
  v_pickup_zone AS pickup_zone, v_dropoff_zone AS dropoff_zone, v_fare AS fare, v_wait_seconds AS wait_seconds,
  v_surge AS surge, source, source_offset, received_at, is_late
FROM checked
WHERE reason IS NULL AND v_event_type <> '{HEARTBEAT}'"""
    rejected = f"""SELECT COALESCE(reason, '{Reason.LATE}') AS reason, SUBSTRING(payload, 1, 4096) AS payload,
  CAST(CHAR_LENGTH(payload) AS BIGINT) AS payload_bytes, source, source_offset, received_at, v_event_id AS event_id
FROM checked
WHERE reason IS NOT NULL OR is_late = 1"""
    return [("checked", checked), ("valid_events", valid), ("rejected", rejected),
            ("zone_slices", slices_query(spec))]


# The Iceberg tables the job writes, as Flink SQL columns: the pyiceberg schemas of iceberg_catalog.tables
# (which this environment cannot import; tests/unit/test_job_sql.py holds the two equal) in Flink's types:
# timestamptz is TIMESTAMP_LTZ(6), long BIGINT, int INT, a required field NOT NULL.
ICEBERG_SINKS: dict[str, tuple[tuple[str, str], ...]] = {
    "bronze.trip_events": (
        ("payload", "STRING"), ("source", "STRING"), ("source_offset", "BIGINT"),
        ("received_at", "TIMESTAMP_LTZ(6)"), ("event_id", "STRING")),
    "silver.trip_events": (
        ("event_id", "STRING NOT NULL"), ("event_time", "TIMESTAMP_LTZ(6) NOT NULL"),
        ("event_type", "STRING NOT NULL"), ("pickup_zone", "STRING NOT NULL"), ("dropoff_zone", "STRING"),
        ("fare", "DOUBLE"), ("wait_seconds", "DOUBLE"), ("surge", "DOUBLE"), ("source", "STRING"),
        ("source_offset", "BIGINT"), ("received_at", "TIMESTAMP_LTZ(6)"), ("is_late", "INT")),
    "gold.zone_features": (
        ("zone", "STRING NOT NULL"), ("window_minutes", "INT NOT NULL"),
        ("window_start", "TIMESTAMP_LTZ(6) NOT NULL"), ("window_end", "TIMESTAMP_LTZ(6) NOT NULL"),
        ("requests", "BIGINT NOT NULL"), ("completions", "BIGINT NOT NULL"), ("cancellations", "BIGINT NOT NULL"),
        ("fare_sum", "DOUBLE"), ("fare_mean", "DOUBLE"), ("fare_max", "DOUBLE"), ("wait_mean", "DOUBLE"),
        ("wait_max", "DOUBLE"), ("surge_mean", "DOUBLE"), ("events", "BIGINT NOT NULL"),
        ("computed_at", "TIMESTAMP_LTZ(6)")),
    "ops.dead_letters": (
        ("reason", "STRING NOT NULL"), ("payload", "STRING"), ("payload_bytes", "BIGINT"), ("source", "STRING"),
        ("source_offset", "BIGINT"), ("received_at", "TIMESTAMP_LTZ(6) NOT NULL"), ("event_id", "STRING")),
}


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def iceberg_table(spec: JobSpec, identifier: str) -> str:
    """``identifier`` (``namespace.table``) inside the job's Iceberg catalog, quoted for Flink SQL."""
    return ".".join(_ident(part) for part in (spec.catalog_name, *identifier.split(".")))


def catalog_ddl(spec: JobSpec) -> str:
    """The Iceberg catalog pyiceberg created the tables in, seen from Flink (``type=iceberg``).

    Registered under the same name pyiceberg uses, since the JDBC catalog keys its rows by catalog name.
    """
    if not spec.catalog_options:
        raise ValueError("JobSpec.catalog_options is empty: the job needs the Iceberg catalog it writes to")
    opts = {"type": "iceberg", **spec.catalog_options}
    with_ = ",\n  ".join(f"{_q(k)} = {_q(v)}" for k, v in opts.items())
    return f"CREATE CATALOG IF NOT EXISTS {_ident(spec.catalog_name)} WITH (\n  {with_}\n)"


def iceberg_insert(spec: JobSpec, identifier: str, exprs: dict[str, str], source: str) -> str:
    """``INSERT INTO`` one Iceberg table: ``exprs`` maps each of its columns (all of them, in the table's order)
    to a SQL expression over ``source``, cast to the column's type."""
    columns = ICEBERG_SINKS[identifier]
    if list(exprs) != [name for name, _ in columns]:
        raise ValueError(f"{identifier}: expressions for {list(exprs)}, table columns {[n for n, _ in columns]}")
    select = ",\n  ".join(f"CAST({exprs[name]} AS {typ.removesuffix(' NOT NULL')}) AS {name}"
                          for name, typ in columns)
    return f"INSERT INTO {iceberg_table(spec, identifier)}\nSELECT\n  {select}\nFROM {source}"


FEATURE_COLUMNS = """  zone STRING, window_minutes INT, window_start TIMESTAMP_LTZ(3), window_end TIMESTAMP_LTZ(3),
  requests BIGINT, completions BIGINT, cancellations BIGINT, fare_sum DOUBLE, fare_mean DOUBLE, fare_max DOUBLE,
  wait_mean DOUBLE, wait_max DOUBLE, surge_mean DOUBLE, events BIGINT, computed_at TIMESTAMP_LTZ(3)"""


def sink_ddls(spec: JobSpec) -> list[str]:
    """The Kafka sinks of the streaming job (the online features and the dead-letter topic); the lake's tables
    come from the catalog of :func:`catalog_ddl`."""
    ddls = []
    if spec.mode == "stream":
        common = {"connector": "kafka", "properties.bootstrap.servers": spec.bootstrap_servers, "format": "json",
                  "json.timestamp-format.standard": "ISO-8601", "sink.delivery-guarantee": "at-least-once"}
        for name, topic, cols in (
            ("online_features", spec.features_topic, FEATURE_COLUMNS),
            ("dlq_topic", spec.dead_letter_topic, "  reason STRING, payload STRING, source STRING, "
                                                 "source_offset BIGINT, received_at TIMESTAMP_LTZ(3)"),
        ):
            opts = {**common, "topic": topic}
            with_ = ",\n  ".join(f"{_q(k)} = {_q(v)}" for k, v in opts.items())
            ddls.append(f"CREATE TEMPORARY TABLE {name} (\n{cols}\n) WITH (\n  {with_}\n)")
    return ddls


def slices_query(spec: JobSpec, events: str = "valid_events") -> str:
    """Per zone and slide, the decomposable sums of the features: one window aggregation per event.

    Every configured window is a whole number of slides, so each is aggregated from these slices (Flink's
    cascading windows) instead of from the events: one aggregation per event instead of one per window size,
    and the hopping windows then aggregate a few rows per zone and slide. Means are kept as sum and count.
    """
    return f"""SELECT pickup_zone AS zone, window_time AS slice_time,
  SUM(CASE WHEN event_type = 'requested' THEN 1 ELSE 0 END) AS requests,
  SUM(CASE WHEN event_type = 'completed' THEN 1 ELSE 0 END) AS completions,
  SUM(CASE WHEN event_type = 'cancelled' THEN 1 ELSE 0 END) AS cancellations,
  SUM(fare) AS fare_sum, COUNT(fare) AS fare_n, MAX(fare) AS fare_max,
  SUM(wait_seconds) AS wait_sum, COUNT(wait_seconds) AS wait_n, MAX(wait_seconds) AS wait_max,
  SUM(surge) AS surge_sum, COUNT(surge) AS surge_n, COUNT(*) AS events
FROM TABLE(TUMBLE(TABLE {events}, DESCRIPTOR(event_ts), INTERVAL '{spec.slide_minutes}' MINUTE))
GROUP BY pickup_zone, window_start, window_end, window_time"""


def _mean(name: str) -> str:
    return f"SUM({name}_sum) / CAST(NULLIF(SUM({name}_n), 0) AS DOUBLE)"


def features_query(spec: JobSpec, slices: str = "zone_slices") -> str:
    """Every window of ``spec.window_minutes``, hopping by the slide, aggregated from ``slices``."""
    bad = [w for w in spec.window_minutes if w % spec.slide_minutes]
    if bad:
        raise ValueError(f"windows {bad} are not a multiple of the {spec.slide_minutes}-minute slide")
    parts = []
    for w in spec.window_minutes:
        parts.append(f"""SELECT zone, {w} AS window_minutes, window_start, window_end,
  SUM(requests) AS requests, SUM(completions) AS completions, SUM(cancellations) AS cancellations,
  SUM(fare_sum) AS fare_sum, {_mean("fare")} AS fare_mean, MAX(fare_max) AS fare_max,
  {_mean("wait")} AS wait_mean, MAX(wait_max) AS wait_max, {_mean("surge")} AS surge_mean,
  SUM(events) AS events, CURRENT_TIMESTAMP AS computed_at
FROM TABLE(HOP(TABLE {slices}, DESCRIPTOR(slice_time), INTERVAL '{spec.slide_minutes}' MINUTE,
               INTERVAL '{w}' MINUTE))
GROUP BY zone, window_start, window_end""")
    return "\nUNION ALL\n".join(parts)


@dataclass
class JobStatements:
    """The job around its shared tables.

    Flink's planner optimizes a statement set's INSERTs together, but it inlines a SQL view into each INSERT that
    reads it, so every sink branch would parse and check each message again. Each of ``shared`` is registered as
    a Table object instead: all INSERTs then hold the same plan node, which the planner optimizes once and shares
    (a "block" in its multi-sink optimizer).
    """

    before: list[str]  # functions, the Iceberg catalog, source, parsing views
    shared: list[tuple[str, str]]  # (name, SELECT), registered in order as shared Table objects
    after: list[str]  # the Kafka sinks (stream mode)
    inserts: list[str]  # run together in one statement set


def statements(spec: JobSpec) -> JobStatements:
    features = features_query(spec)
    same = lambda *names: {n: n for n in names}  # noqa: E731
    inserts = [
        iceberg_insert(spec, "bronze.trip_events", {
            "payload": f"SUBSTRING(payload, 1, {spec.max_payload_bytes})", "source": "source",
            "source_offset": "source_offset", "received_at": "received_at", "event_id": "v_event_id",
        }, "checked"),
        iceberg_insert(spec, "silver.trip_events", {
            "event_id": "event_id", "event_time": "event_ts",
            **same("event_type", "pickup_zone", "dropoff_zone", "fare", "wait_seconds", "surge", "source",
                   "source_offset", "received_at", "is_late"),
        }, "valid_events"),
        iceberg_insert(spec, "gold.zone_features", same(*(n for n, _ in ICEBERG_SINKS["gold.zone_features"])),
                       f"(\n{features}\n)"),
        iceberg_insert(spec, "ops.dead_letters", same(*(n for n, _ in ICEBERG_SINKS["ops.dead_letters"])),
                       "rejected"),
    ]
    if spec.mode == "stream":
        inserts.append(f"INSERT INTO online_features {features}")
        inserts.append("INSERT INTO dlq_topic SELECT reason, payload, source, source_offset, received_at "
                       "FROM rejected")
    return JobStatements([*function_ddls(), catalog_ddl(spec), source_ddl(spec), *parsed_views(spec)],
                         shared_selects(spec), sink_ddls(spec), inserts)
