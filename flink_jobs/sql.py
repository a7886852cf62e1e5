"""Builds the feature job's Flink SQL from a job spec: one function per statement, no Flink imports.

Kept apart from the PyFlink driver so the app environment can render and unit-test the SQL without a JVM,
and so the validation rules are generated from ``ridecast.events.FIELDS`` (the single contract) instead of
being written a second time by hand.

Why raw payloads instead of the json format: the json format drops unparseable messages (or fails the job), and
a message we cannot parse must land in the dead letters with its reason. Parsing happens in SQL (no Python UDF:
those run ~7x slower here, see PLATFORM.md): ``TRY_PARSE_JSON`` once per message into a VARIANT, then each
field is read from that VARIANT, never from the text again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ridecast.events import (
    CONCATENATED,
    ENDS_OBJECT,
    EVENT_TIME_IN_TEXT,
    EVENT_TYPES,
    FIELDS,
    HEARTBEAT,
    MAX_ID_LENGTH,
    SCHEMA_VERSION,
    STARTS_OBJECT,
    Reason,
)

__all__ = ["JobSpec", "JobStatements", "statements"]


@dataclass
class JobSpec:
    """Everything the job needs, serialised to JSON by the app side (ridecast.pipeline)."""

    mode: str  # "stream" (Kafka source, unbounded) | "batch" (JSONL files, bounded)
    staging_dir: str  # file sinks write <staging_dir>/<table>/
    zones: list[str]
    window_minutes: list[int]
    slide_minutes: int
    watermark_delay_s: int
    max_future_skew_s: int
    max_event_age_days: int
    max_payload_bytes: int
    rolling_interval_s: int = 10
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


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _jv(name: str, returning: str | None = None) -> str:
    # Numbers are parsed from JSON_VALUE's text with TRY_CAST: JSON_VALUE ... RETURNING DOUBLE hands back a
    # java.lang.String for a JSON string value and fails the job with a ClassCastException (Flink 2.3).
    text = f"JSON_VALUE(payload, '$.{name}')"
    return f"TRY_CAST({text} AS {returning})" if returning else text


def _now_ms(spec: JobSpec) -> str:
    # Streaming: the wall clock per record. Batch: the spec's fixed instant, so a rerun decides identically.
    return str(spec.now_ms) if spec.now_ms is not None else "(CAST(UNIX_TIMESTAMP() AS BIGINT) * 1000)"


def event_time_expr(spec: JobSpec) -> str:
    """Event time in ms for the source's watermark, NULL unless plausible: a far-future or absurd timestamp must
    not move the watermark.

    Read from the text, not parsed (a JSON parse here cost more than the rest of the validation), as
    ``events.event_time_in_text`` does; ``reason_expr`` refuses an event whose parsed time differs from this
    one. Flink compiles the pattern of REGEXP_EXTRACT on every call, so compact JSON takes a plain-string path:
    when the first ``"event_time_ms"`` is followed by ``:``, the text up to the next comma is the number; the
    regex runs only when that does not parse (the key is last, or spaced, or the value is not a number).
    """
    key = "'\"event_time_ms\"'"
    compact = "'\"event_time_ms\":'"
    first = f"POSITION({key} IN payload)"
    fast = (f"CASE WHEN {first} > 0 AND {first} = POSITION({compact} IN payload) THEN "
            f"TRY_CAST(SPLIT_INDEX(SUBSTRING(payload FROM {first} + 16 FOR 32), ',', 0) AS DOUBLE) END")
    slow = f"TRY_CAST(REGEXP_EXTRACT(payload, {_q(EVENT_TIME_IN_TEXT)}, 1) AS DOUBLE)"
    t = f"TRY_CAST(COALESCE({fast}, {slow}) AS BIGINT)"
    lo = f"({_now_ms(spec)} - {spec.max_event_age_days} * CAST(86400000 AS BIGINT))"
    hi = f"({_now_ms(spec)} + {spec.max_future_skew_s * 1000})"
    return f"CASE WHEN {t} BETWEEN {lo} AND {hi} THEN {t} END"


def reason_expr(spec: JobSpec) -> str:
    """The dead-letter reason of a row of ``parsed``, NULL when valid. Same order as ``events.reject_reason``."""
    checks: list[tuple[str, str]] = [
        ("payload IS NULL", Reason.INVALID_JSON),  # a Kafka tombstone: otherwise every check is NULL
        (f"payload_chars > {spec.max_payload_bytes}", Reason.TOO_LARGE),
        ("NOT is_object", Reason.INVALID_JSON),
    ]
    for f in FIELDS:
        w = f"w_{f.name}"
        if f.required:
            checks.append((f"{w} IS NULL", f"{Reason.MISSING}:{f.name}"))
        test = _TYPE_TEST[f.kind].format(w=w, v=f"v_{f.name}")
        checks.append((f"{w} IS NOT NULL AND NOT ({test})", f"{Reason.WRONG_TYPE}:{f.name}"))
    checks.append((f"v_schema_version <> {SCHEMA_VERSION}", Reason.BAD_VERSION))
    checks.append((f"CHAR_LENGTH(v_event_id) > {MAX_ID_LENGTH} OR CHAR_LENGTH(v_event_id) = 0", Reason.ID_TOO_LONG))
    types = ", ".join(_q(t) for t in (*EVENT_TYPES, HEARTBEAT))
    checks.append((f"v_event_type NOT IN ({types})", Reason.BAD_TYPE))
    zones = ", ".join(_q(z) for z in spec.zones)
    checks.append((f"v_pickup_zone NOT IN ({zones})", Reason.UNKNOWN_ZONE))
    checks.append((f"v_dropoff_zone IS NOT NULL AND v_dropoff_zone NOT IN ({zones})", Reason.UNKNOWN_ZONE))
    for f in FIELDS:
        if f.kind == "double" and f.low is not None:
            v = f"v_{f.name}"
            checks.append((f"{v} IS NOT NULL AND ({v} < {f.low} OR {v} > {f.high})", f"{Reason.OUT_OF_RANGE}:{f.name}"))
    checks.append((f"v_event_time_ms > {_now_ms(spec)} + {spec.max_future_skew_s * 1000}", Reason.FUTURE))
    checks.append((f"v_event_time_ms < {_now_ms(spec)} - {spec.max_event_age_days} * CAST(86400000 AS BIGINT)",
                   Reason.TOO_OLD))
    # the source's event time (the windows' rowtime) must be this event's own time
    checks.append(("event_ts IS NULL OR event_ts <> TO_TIMESTAMP_LTZ(v_event_time_ms, 3)", Reason.AMBIGUOUS_TIME))
    whens = "\n    ".join(f"WHEN {cond} THEN {_q(reason)}" for cond, reason in checks)
    return f"CASE\n    {whens}\n  END"


# A guard Flink's optimizer cannot see through. Its calc-merge rule inlines a projection into every expression
# that references it (the payload would be parsed once per field and check, 166 times per event at first), but
# it does not duplicate a non-deterministic expression that is referenced more than once. ``RAND() < 2`` is
# always true and costs a few nanoseconds; wrapping an expression in it makes the planner compute it once.
_ONCE = "RAND() < 2"


def _once(expr: str, cond: str = "") -> str:
    return f"CASE WHEN {_ONCE}{' AND ' + cond if cond else ''} THEN {expr} END"


# Type tests on a field's JSON text (JSON_STRING of its VARIANT): "s" | 12 | 12.5 | true | {...} | [...]. This
# tells every JSON kind apart, which JSON_VALUE cannot. A long is any integral number in 64 bits (its typed value
# is NULL otherwise), as in ``events._is_kind``.
# No regex here: Flink compiles a REGEXP's pattern on every call. A number's text parses as a DOUBLE, a string's
# (quoted) text or true/{...}/[...] does not.
_TYPE_TEST = {
    "string": "{w} LIKE '\"%'",
    "long": "{v} IS NOT NULL",
    "double": "{v} IS NOT NULL",
}
# The message is one JSON object (the parser alone ignores whatever follows the first value; see events.py).
# The plain-string tests decide the usual case: it starts with "{", and its first "}" is its last character.
_ONE_OBJECT = (f"(payload LIKE '{{%' OR REGEXP(payload, {_q(STARTS_OBJECT)})) AND "
               f"(POSITION('}}' IN payload) = CHAR_LENGTH(payload) OR "
               f"(REGEXP(payload, {_q(ENDS_OBJECT)}) AND NOT REGEXP(payload, {_q(CONCATENATED)})))")


def source_ddl(spec: JobSpec) -> str:
    if spec.mode == "stream":
        columns = """
  payload STRING,
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
            "raw.charset": "UTF-8",
            # Tansu: the first JoinGroup waits ~session_timeout/2 (PLATFORM.md)
            "properties.session.timeout.ms": "6000",
            "properties.heartbeat.interval.ms": "1000",
            "scan.watermark.idle-timeout": f"{spec.idle_timeout_s} s",
        }
    else:
        columns = """
  payload STRING,
  file_path STRING NOT NULL METADATA FROM 'file.path' VIRTUAL,"""
        opts = {"connector": "filesystem", "path": spec.input_path, "format": "raw", "raw.charset": "UTF-8"}
    with_ = ",\n  ".join(f"{_q(k)} = {_q(v)}" for k, v in opts.items())
    return f"""CREATE TEMPORARY TABLE raw_events ({columns}
  event_ts AS TO_TIMESTAMP_LTZ({event_time_expr(spec)}, 3),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '{spec.watermark_delay_s}' SECOND
) WITH (
  {with_}
)"""


def _value(f) -> str:
    """A field's typed value from its JSON text, without parsing the payload again."""
    w = f"w_{f.name}"
    if f.kind == "string":
        # a string without escapes is its text minus the quotes; only escaped ones go through a (tiny) parse
        return (f"CASE WHEN POSITION('\\' IN {w}) = 0 THEN SUBSTRING({w} FROM 2 FOR CHAR_LENGTH({w}) - 2) "
                f"ELSE JSON_VALUE(CONCAT('[', {w}, ']'), '$[0]') END")
    if f.kind == "double":
        return f"TRY_CAST({w} AS DOUBLE)"
    d = f"TRY_CAST({w} AS DOUBLE)"  # 12.0 or 1.7E12: integral, in range (TRY_CAST('12.5' AS BIGINT) is 12)
    return (f"CASE WHEN POSITION('.' IN {w}) = 0 AND POSITION('E' IN {w}) = 0 AND POSITION('e' IN {w}) = 0 "
            f"THEN TRY_CAST({w} AS BIGINT) "
            f"WHEN {d} = FLOOR({d}) AND {d} >= -9.223372036854775808E18 AND {d} < 9.223372036854775808E18 "
            f"THEN CAST({d} AS BIGINT) END")


def parsed_views(spec: JobSpec) -> list[str]:
    """Every message once, parsed once, with its source coordinates and its reason (lateness is judged after
    the shared view, in ``checked``).

    Three steps, each computed once per message behind the ``_ONCE`` guard: the payload into a VARIANT (only
    if it is not over the size limit), each field's JSON text out of the VARIANT, each typed value out of its
    text. The checks then read those columns. A VARIANT's key lookup fails on a non-object, so fields are
    only read when the payload is a JSON object.
    """
    if spec.mode == "stream":
        src = "CONCAT('kafka:', kafka_topic, '/', CAST(kafka_partition AS STRING))"
        off = "kafka_offset"
    else:
        src = f"{_q('file:' + spec.source_name)}"
        off = "CAST(NULL AS BIGINT)"
    # batch: a plain timestamp (a bounded input has no rowtime to keep, and the planner rejects one in a view)
    ts = "event_ts" if spec.mode == "stream" else "CAST(event_ts AS TIMESTAMP_LTZ(3)) AS event_ts"
    obj = "one_object AND doc IS NOT NULL"
    texts = ",\n  ".join(_once(f"JSON_STRING(doc[{_q(f.name)}])", obj) + f" AS j_{f.name}" for f in FIELDS)
    # NULLIF is expanded into a CASE that evaluates its argument twice: apply it to the column, a string compare
    present = ",\n  ".join(f"NULLIF(j_{f.name}, 'null') AS w_{f.name}" for f in FIELDS)
    values = ",\n  ".join(f"{_once(_value(f))} AS v_{f.name}" for f in FIELDS)
    return [
        f"""CREATE TEMPORARY VIEW parsed AS
SELECT
  payload, {src} AS source, {off} AS source_offset, CURRENT_TIMESTAMP AS received_at, {ts},
  CHAR_LENGTH(payload) AS payload_chars,
  {_once("TRY_PARSE_JSON(payload, TRUE)", f"CHAR_LENGTH(payload) <= {spec.max_payload_bytes}")} AS doc,
  {_ONE_OBJECT} AS one_object
FROM raw_events""",
        f"""CREATE TEMPORARY VIEW fields AS
SELECT payload, source, source_offset, received_at, event_ts, payload_chars, {obj} AS is_object,
  {texts}
FROM parsed""",
        f"""CREATE TEMPORARY VIEW present AS
SELECT payload, source, source_offset, received_at, event_ts, payload_chars, is_object,
  {present}
FROM fields""",
        f"""CREATE TEMPORARY VIEW typed AS
SELECT *,
  {values}
FROM present""",
        f"""CREATE TEMPORARY VIEW checked_raw AS
SELECT *, {reason_expr(spec)} AS reason FROM typed""",
    ]


def checked_view(spec: JobSpec) -> str:
    """``checked`` = the materialized rows plus lateness, judged against the watermark that flowed through."""
    slide_ms = spec.slide_minutes * 60_000
    # A valid event is late when the first window it belongs to has already fired: those windows miss it.
    late = (f"CASE WHEN CURRENT_WATERMARK(event_time) IS NOT NULL AND v_event_type <> '{HEARTBEAT}' AND "
            f"TO_TIMESTAMP_LTZ((v_event_time_ms / {slide_ms} + 1) * {slide_ms} - 1, 3) "
            f"<= CURRENT_WATERMARK(event_time) THEN 1 ELSE 0 END") if spec.mode == "stream" else "0"
    return f"CREATE TEMPORARY VIEW checked AS SELECT *, {late} AS is_late FROM checked_stream"


# The shared view every sink reads (see JobStatements.boundary). event_time is the source's rowtime attribute.
BOUNDARY_SELECT = """SELECT payload, source, source_offset, received_at, payload_chars, reason,
  event_ts AS event_time, v_event_time_ms,
  v_event_id, v_event_type, v_pickup_zone, v_dropoff_zone, v_fare, v_wait_seconds, v_surge
FROM checked_raw"""


def valid_view() -> str:
    return f"""CREATE TEMPORARY VIEW valid_events AS
SELECT
  v_event_id AS event_id, event_time AS event_ts, v_event_type AS event_type,
  v_pickup_zone AS pickup_zone, v_dropoff_zone AS dropoff_zone, v_fare AS fare, v_wait_seconds AS wait_seconds,
  v_surge AS surge, source, source_offset, received_at, is_late
FROM checked
WHERE reason IS NULL AND v_event_type <> '{HEARTBEAT}'"""


def _file_sink(name: str, columns: str, spec: JobSpec) -> str:
    opts = {
        "connector": "filesystem",
        "path": f"{spec.staging_dir}/{name}",
        "format": "json",
        "json.timestamp-format.standard": "ISO-8601",
        "json.encode.decimal-as-plain-number": "true",
        "sink.rolling-policy.rollover-interval": f"{spec.rolling_interval_s} s",
        "sink.rolling-policy.inactivity-interval": f"{spec.rolling_interval_s} s",
        "sink.rolling-policy.check-interval": f"{max(1, spec.rolling_interval_s // 2)} s",
    }
    with_ = ",\n  ".join(f"{_q(k)} = {_q(v)}" for k, v in opts.items())
    return f"CREATE TEMPORARY TABLE {name}_sink (\n{columns}\n) WITH (\n  {with_}\n)"


FEATURE_COLUMNS = """  zone STRING, window_minutes INT, window_start TIMESTAMP_LTZ(3), window_end TIMESTAMP_LTZ(3),
  requests BIGINT, completions BIGINT, cancellations BIGINT, fare_sum DOUBLE, fare_mean DOUBLE, fare_max DOUBLE,
  wait_mean DOUBLE, wait_max DOUBLE, surge_mean DOUBLE, events BIGINT, computed_at TIMESTAMP_LTZ(3)"""


def sink_ddls(spec: JobSpec) -> list[str]:
    ddls = [
        _file_sink("bronze", "  payload STRING, source STRING, source_offset BIGINT, received_at TIMESTAMP_LTZ(3), "
                   "event_id STRING", spec),
        _file_sink("silver", "  event_id STRING, event_time TIMESTAMP_LTZ(3), event_type STRING, pickup_zone STRING, "
                   "dropoff_zone STRING, fare DOUBLE, wait_seconds DOUBLE, surge DOUBLE, source STRING, "
                   "source_offset BIGINT, received_at TIMESTAMP_LTZ(3), is_late INT", spec),
        _file_sink("gold", FEATURE_COLUMNS, spec),
        _file_sink("dead_letters", "  reason STRING, payload STRING, payload_bytes BIGINT, source STRING, "
                   "source_offset BIGINT, received_at TIMESTAMP_LTZ(3), event_id STRING", spec),
    ]
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


def features_query(spec: JobSpec) -> str:
    parts = []
    for w in spec.window_minutes:
        parts.append(f"""SELECT pickup_zone AS zone, {w} AS window_minutes, window_start, window_end,
  SUM(CASE WHEN event_type = 'requested' THEN 1 ELSE 0 END) AS requests,
  SUM(CASE WHEN event_type = 'completed' THEN 1 ELSE 0 END) AS completions,
  SUM(CASE WHEN event_type = 'cancelled' THEN 1 ELSE 0 END) AS cancellations,
  SUM(fare) AS fare_sum, AVG(fare) AS fare_mean, MAX(fare) AS fare_max,
  AVG(wait_seconds) AS wait_mean, MAX(wait_seconds) AS wait_max, AVG(surge) AS surge_mean,
  COUNT(*) AS events, CURRENT_TIMESTAMP AS computed_at
FROM TABLE(HOP(TABLE valid_events, DESCRIPTOR(event_ts), INTERVAL '{spec.slide_minutes}' MINUTE,
               INTERVAL '{w}' MINUTE))
GROUP BY pickup_zone, window_start, window_end""")
    return "\nUNION ALL\n".join(parts)


@dataclass
class JobStatements:
    """The job in three parts around one shared view.

    Flink's planner optimizes a statement set's INSERTs together, but it inlines a SQL view into each INSERT that
    reads it, so every sink branch would parse and check each message again. ``boundary`` is registered as a
    Table object (``checked_stream``): all INSERTs then hold the same plan node, which the planner optimizes
    once and shares (a "block" in its multi-sink optimizer). Every sink reads it through the view ``checked``.
    """

    before: list[str]  # source + parsing views
    boundary: str  # SELECT registered as the shared table `checked_stream`
    after: list[str]  # views over `checked` + sinks
    inserts: list[str]  # run together in one statement set


def statements(spec: JobSpec) -> JobStatements:
    features = features_query(spec)
    inserts = [
        f"INSERT INTO bronze_sink SELECT SUBSTRING(payload, 1, {spec.max_payload_bytes}), source, source_offset, "
        "received_at, v_event_id FROM checked",
        "INSERT INTO silver_sink SELECT event_id, event_ts, event_type, pickup_zone, dropoff_zone, fare, "
        "wait_seconds, surge, source, source_offset, received_at, is_late FROM valid_events",
        f"INSERT INTO gold_sink {features}",
        "INSERT INTO dead_letters_sink SELECT COALESCE(reason, '" + Reason.LATE + "'), SUBSTRING(payload, 1, 4096), "
        "CAST(payload_chars AS BIGINT), source, source_offset, received_at, v_event_id "
        "FROM checked WHERE reason IS NOT NULL OR is_late = 1",
    ]
    if spec.mode == "stream":
        inserts.append(f"INSERT INTO online_features {features}")
        inserts.append("INSERT INTO dlq_topic SELECT COALESCE(reason, '" + Reason.LATE + "'), "
                       "SUBSTRING(payload, 1, 4096), source, source_offset, received_at "
                       "FROM checked WHERE reason IS NOT NULL OR is_late = 1")
    return JobStatements([source_ddl(spec), *parsed_views(spec)], BOUNDARY_SELECT,
                         [checked_view(spec), valid_view(), *sink_ddls(spec)],
                         inserts)
