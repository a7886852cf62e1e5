"""The trip-event contract, version 1: one definition for producer, Flink job, tables and tests.

Standard library only, so the Flink environment (pinned to an older pyarrow/pandas) imports the same module
as the app environment. The Flink job's check function (flink_jobs/udf) receives these rules as data rendered
from :data:`FIELDS` (``flink_jobs.sql.rules_literal``), and :func:`reject_reason` is the reference
implementation of the same rules in Python, used by the backfill path and by tests as the oracle;
tests/test_job_contract.py and tests/test_udf.py keep the two in agreement.

Wire format: one JSON object per Kafka message, UTF-8, keyed by pickup zone. ``event_time_ms`` is epoch
milliseconds UTC, which Flink turns into the event-time attribute.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "EVENT_TYPES",
    "FIELDS",
    "HEARTBEAT",
    "SCHEMA_VERSION",
    "Field",
    "Zone",
    "load_zones",
    "make_event",
    "event_time_in_text",
    "parse_message",
    "reject_reason",
    "Reason",
]

SCHEMA_VERSION = 1
EVENT_TYPES = ("requested", "completed", "cancelled")
# Producers send heartbeats so that the watermark advances on quiet partitions; they carry no demand and are
# neither counted nor dead-lettered.
HEARTBEAT = "heartbeat"
MAX_ID_LENGTH = 64


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "string" | "long" | "double"
    required: bool
    low: float | None = None  # inclusive range for numbers
    high: float | None = None
    description: str = ""


FIELDS: tuple[Field, ...] = (
    Field("event_id", "string", True, description="unique per event; the dedupe key end to end"),
    Field("schema_version", "long", True, 1, SCHEMA_VERSION, "version of this contract"),
    Field("event_time_ms", "long", True, description="event time, epoch milliseconds UTC"),
    Field("event_type", "string", True, description="requested | completed | cancelled | heartbeat"),
    Field("pickup_zone", "string", True, description="zone code from the zone list"),
    Field("dropoff_zone", "string", False, description="zone code, may be absent"),
    Field("fare", "double", False, 0.0, 1000.0, "fare in local currency (completed trips)"),
    Field("wait_seconds", "double", False, 0.0, 7200.0, "request to pickup, seconds"),
    Field("surge", "double", False, 1.0, 10.0, "surge multiplier shown to the rider"),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}


class Reason:
    """Dead-letter reasons; stable strings, queried by operators (``ops.dead_letters.reason``)."""

    INVALID_JSON = "invalid_json"
    TOO_LARGE = "payload_too_large"
    MISSING = "missing_field"  # + ":<field>"
    WRONG_TYPE = "wrong_type"  # + ":<field>"
    OUT_OF_RANGE = "out_of_range"  # + ":<field>"
    BAD_VERSION = "unsupported_schema_version"
    BAD_TYPE = "unknown_event_type"
    UNKNOWN_ZONE = "unknown_zone"
    ID_TOO_LONG = "event_id_too_long"
    FUTURE = "event_time_in_future"
    TOO_OLD = "event_time_too_old"
    # the first "event_time_ms" key in the text is not the top-level one (e.g. a nested object carries one too):
    # the job reads the event time for its watermark straight from the text, so such an event is refused.
    AMBIGUOUS_TIME = "ambiguous_event_time"
    LATE = "late_event"  # valid, kept in silver, but its windows had already closed
    # the job's check function failed on the message (a bug of the checker, not a fault of the message): such
    # messages may be valid events, so they are kept apart from invalid_json, counted, and worth a bug report
    CHECKER_ERROR = "checker_error"


@dataclass(frozen=True)
class Zone:
    zone: str
    name: str
    region: str
    kind: str
    weight: float
    lat: float
    lon: float


DEFAULT_ZONES_FILE = Path(__file__).with_name("data") / "sg_planning_areas.csv"


@lru_cache(maxsize=8)
def load_zones(path: str | Path | None = None) -> tuple[Zone, ...]:
    """Zones are data: a CSV with at least a ``zone`` column (other columns default)."""
    p = Path(path) if path else DEFAULT_ZONES_FILE
    with p.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "zone" not in rows[0]:
        raise ValueError(f"{p}: a zone list needs a header with a 'zone' column")
    zones = tuple(
        Zone(
            zone=r["zone"].strip(),
            name=(r.get("name") or r["zone"]).strip(),
            region=(r.get("region") or "").strip(),
            kind=(r.get("kind") or "").strip(),
            weight=float(r.get("weight") or 1.0),
            lat=float(r.get("lat") or "nan"),
            lon=float(r.get("lon") or "nan"),
        )
        for r in rows
        if r.get("zone", "").strip()
    )
    if len({z.zone for z in zones}) != len(zones):
        raise ValueError(f"{p}: duplicate zone codes")
    return zones


def make_event(
    event_id: str,
    event_time_ms: int,
    event_type: str,
    pickup_zone: str,
    *,
    dropoff_zone: str | None = None,
    fare: float | None = None,
    wait_seconds: float | None = None,
    surge: float | None = None,
) -> dict[str, Any]:
    """A well-formed v1 event as a dict (optional fields left out when None)."""
    event = {
        "event_id": event_id,
        "schema_version": SCHEMA_VERSION,
        "event_time_ms": int(event_time_ms),
        "event_type": event_type,
        "pickup_zone": pickup_zone,
        "dropoff_zone": dropoff_zone,
        "fare": fare,
        "wait_seconds": wait_seconds,
        "surge": surge,
    }
    return {k: v for k, v in event.items() if v is not None}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN/Infinity; JSON (and Flink) does not


# A surrogate code point left in a decoded JSON string: an escape such as "\ud800" without its pair. Such a string
# is no Unicode text (it cannot be written as UTF-8 to any table), so the field has the wrong type.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str) and not _LONE_SURROGATE.search(value)
    if isinstance(value, bool):
        return False
    if kind == "long":
        # an integral number in 64 bits: 12, 12.0 and 1.7e12 are longs (the job's JSON parser keeps no trace
        # of how a number was written), 12.5 and 10**30 are not
        if isinstance(value, float):
            return math.isfinite(value) and value.is_integer() and -(2.0**63) <= value < 2.0**63
        return isinstance(value, int) and -(2**63) <= value < 2**63
    return isinstance(value, (int, float)) and math.isfinite(value)


# The shape of a message the job accepts as one JSON object. A JSON parser (Python's raw_decode here, Jackson in the
# job's check function, flink_jobs/udf CheckEvent.oneObject) reads the first value and ignores what follows, so
# these checks on the text catch the usual corruptions: leading junk, trailing junk or truncation, and two events
# concatenated into one message. (A "}{" inside a string value is refused too; extra closing brackets after the
# object are not noticed.)
JSON_WHITESPACE = r"[ \t\r\n]*"
_STARTS = re.compile(r"^" + JSON_WHITESPACE + r"\{")
_ENDS = re.compile(r"\}" + JSON_WHITESPACE + r"\Z")
_CONCATENATED = re.compile(r"\}" + JSON_WHITESPACE + r"\{")
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_message(raw: bytes) -> Any:
    """The message's JSON object as the job reads it, or ValueError. Bytes are UTF-8, invalid ones replaced."""
    text = raw.decode("utf-8", "replace")
    start = _STARTS.match(text)
    if not start or not _ENDS.search(text) or _CONCATENATED.search(text):
        raise ValueError("not one JSON object")
    try:
        value, _ = _DECODER.raw_decode(text, start.end() - 1)
    except RecursionError:  # nested deeper than Python's stack; the job's parser refuses past 1000 levels
        raise ValueError("nested too deeply") from None
    return value


def reject_reason(
    payload: bytes | str | Mapping[str, Any],
    zones: Iterable[str],
    *,
    now_ms: int | None = None,
    max_future_skew_s: int = 900,
    max_event_age_days: int = 3650,
    max_payload_bytes: int = 16384,
) -> str | None:
    """Why an event is rejected, or None if it is valid. Checks run in the same order as the Flink SQL."""
    if isinstance(payload, (bytes, str)):
        raw = payload.encode() if isinstance(payload, str) else payload
        if len(raw) > max_payload_bytes:
            return Reason.TOO_LARGE
        try:
            event = parse_message(raw)
        except ValueError:
            return Reason.INVALID_JSON
        if not isinstance(event, dict):
            return Reason.INVALID_JSON
    else:
        event = payload
    for f in FIELDS:
        value = event.get(f.name)
        if value is None:
            if f.required:
                return f"{Reason.MISSING}:{f.name}"
            continue
        if not _is_kind(value, f.kind):
            return f"{Reason.WRONG_TYPE}:{f.name}"
    if event["schema_version"] != SCHEMA_VERSION:
        return Reason.BAD_VERSION
    if len(event["event_id"]) > MAX_ID_LENGTH or not event["event_id"]:
        return Reason.ID_TOO_LONG
    if event["event_type"] not in EVENT_TYPES + (HEARTBEAT,):
        return Reason.BAD_TYPE
    known = zones if isinstance(zones, (set, frozenset)) else set(zones)
    if event["pickup_zone"] not in known:
        return Reason.UNKNOWN_ZONE
    dropoff = event.get("dropoff_zone")
    if dropoff is not None and dropoff not in known:
        return Reason.UNKNOWN_ZONE
    for f in FIELDS:
        if f.kind == "double" and f.low is not None and event.get(f.name) is not None:
            if not f.low <= float(event[f.name]) <= f.high:
                return f"{Reason.OUT_OF_RANGE}:{f.name}"
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    ts = int(event["event_time_ms"])  # an integral float is a long (see _is_kind)
    if ts > now_ms + max_future_skew_s * 1000:
        return Reason.FUTURE
    if ts < now_ms - max_event_age_days * 86_400_000:
        return Reason.TOO_OLD
    if isinstance(payload, (bytes, str)) and event_time_in_text(raw.decode("utf-8", "replace")) != ts:
        return Reason.AMBIGUOUS_TIME
    return None


# The first "event_time_ms": <integer> in a message's text. Inside a JSON string every quote is escaped, so this
# can only match a key; it is the top-level key unless a nested object has the same key earlier.
EVENT_TIME_IN_TEXT = r'"event_time_ms"[ \t\r\n]*:[ \t\r\n]*(-?[0-9][0-9.eE+-]*)'
_EVENT_TIME_RE = re.compile(EVENT_TIME_IN_TEXT)


def event_time_in_text(text: str) -> int | None:
    """What the Flink job's source reads as the event time (for its watermark) without parsing the JSON."""
    m = _EVENT_TIME_RE.search(text)
    if not m:
        return None
    try:
        value = float(m.group(1))  # the job (EventTimeInText): Double.parseDouble, then truncated to a long
    except ValueError:
        return None
    return int(value) if math.isfinite(value) else None
