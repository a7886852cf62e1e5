"""The Flink job's validation SQL agrees with the Python oracle (``events.reject_reason``) message by message.

A corpus of edge cases (JSON oddities, every wrong type, escapes, duplicate keys, a nested ``event_time_ms``)
goes through the real feature job in batch (``pipeline.backfill``) into Iceberg; every message must come out
either in ``ops.dead_letters`` with the oracle's reason or in ``silver.trip_events`` with the values Python's
json module reads. One JVM, ~30 s: the streaming tests cover the same SQL behind Kafka.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest

from iceberg_catalog.catalog import open_catalog
from ridecast.events import load_zones, make_event, reject_reason
from ridecast.stack.pipeline import backfill
from tests.streaming import hostile_messages

pytestmark = pytest.mark.integration

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00Z, the job's clock for this batch
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _corpus() -> list[str]:
    t = NOW_MS - 3_600_000
    ok = make_event("base", t, "requested", "TAMPINES", dropoff_zone="BEDOK")
    ok_text = json.dumps(ok)

    def var(eid: str, **changes) -> str:
        return json.dumps({**ok, "event_id": eid, **changes})

    def compact(eid: str, first: dict | None = None, **changes) -> str:  # as the producers write, in key order
        return json.dumps({**(first or {}), **ok, "event_id": eid, **changes}, separators=(",", ":"))

    lines = [
        ok_text,
        "  \t" + var("ws-before"),  # JSON whitespace before the object is fine
        var("escaped-id\"\\u00e9\n"),  # escapes in a string are decoded
        json.dumps({**ok, "event_id": "unicode-é-☂"}, ensure_ascii=False),
        '{"event_id": "dup", "event_id": "dup-last", ' + ok_text[1:].replace('"event_id": "base", ', ""),
        var("long-as-float", schema_version=1.0),
        var("time-as-float", event_time_ms=float(t)),
        var("time-exp", event_time_ms=1.7e12),
        var("huge-int", event_time_ms=10 ** 30),
        var("bool-fare", fare=True),
        var("null-dropoff", dropoff_zone=None),
        var("null-fare", fare=None),
        var("array-zone", pickup_zone=["TAMPINES"]),
        var("zone-escaped", pickup_zone="TAMPI\u004eES"),
        var("fare-int", fare=12, event_type="completed"),
        var("fare-neg", fare=-0.5),
        var("surge-edge", surge=10.0),
        var("surge-over", surge=10.000001),
        var("", event_type="requested"),
        var("x" * 65),
        var("hb", event_type="heartbeat"),
        var("bad-type", event_type="teleported"),
        var("too-old", event_time_ms=NOW_MS - 4000 * 86_400_000),
        var("future", event_time_ms=NOW_MS + 3_600_000),
        var("nested-time", meta={"event_time_ms": t - 60_000}),  # the text's first event_time_ms is not the event's
        var("nested-same", meta={"event_time_ms": t}),  # ... unless it is the same time
        compact("c-ok"),
        json.dumps({**{k: v for k, v in ok.items() if k != "event_time_ms"}, "event_id": "c-last-key",
                    "event_time_ms": t}, separators=(",", ":")),
        compact("c-nested-first", first={"meta": {"event_time_ms": 1, "x": 2}}),
        compact("c-nested-first-last", first={"meta": {"event_time_ms": 1}}),
        compact("c-nested-same", first={"meta": {"event_time_ms": t}}),
        compact("c-key-as-value", first={"note": "event_time_ms"}),
        compact("c-time-string", event_time_ms=str(t)),
        compact("c-time-float", event_time_ms=t + 0.5),
        compact("c-time-exp", event_time_ms=1.7e12),
        compact("c-two") + compact("c-two-b"),
        compact("c-two-spaced") + " \t " + compact("c-two-spaced-b"),
        compact("c-nested-obj", extra={"a": {"b": 1}}),
        compact("c-brace-in-string", note="}{"),
        compact("c-brace-in-string-2", note="} x {"),
        "[]",
        "null",
        "42",
        '"just a string"',
        "{}",
        '{"event_id": }',
        "{'single': 'quotes'}",
        ok_text[:-1],  # truncated
        ok_text + "garbage",
    ]
    lines += [raw.decode("utf-8", "replace") for raw, _ in hostile_messages("TAMPINES", t) if raw]
    return [line for line in lines if line.strip()]  # a blank line is no message in a JSONL file


def _epoch_ms(t: datetime) -> int:
    """Integer milliseconds since the epoch, without a float on the way (a float timestamp() loses no ms at
    today's magnitudes, but an exact comparison should not have to rely on that)."""
    return (t - EPOCH) // timedelta(milliseconds=1)


def test_every_message_is_judged_as_the_oracle_judges_it(settings, tmp_path):
    corpus = _corpus()
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(line + "\n" for line in corpus), encoding="utf-8")
    backfill(path, settings, now_ms=NOW_MS, progress=False)

    zones = {z.zone for z in load_zones(settings.zones_file)}
    want = {line: reject_reason(line, zones, now_ms=NOW_MS) for line in corpus}
    catalog = open_catalog(settings)
    dlq = catalog.load_table("ops.dead_letters").scan().to_arrow().to_pylist()
    silver = catalog.load_table("silver.trip_events").scan().to_arrow().to_pylist()

    got_reasons = {row["payload"]: row["reason"] for row in dlq}
    assert len(got_reasons) == len(dlq)
    rejected = {line[:4096]: reason for line, reason in want.items() if reason}  # dead letters keep 4 KiB
    assert got_reasons == rejected

    valid = [json.loads(line) for line, reason in want.items() if not reason and "heartbeat" not in line]
    by_id = {row["event_id"]: row for row in silver}
    assert sorted(by_id) == sorted(e["event_id"] for e in valid)
    for e in valid:
        row = by_id[e["event_id"]]
        assert row["pickup_zone"] == e["pickup_zone"] and row["dropoff_zone"] == e.get("dropoff_zone")
        assert _epoch_ms(row["event_time"]) == int(e["event_time_ms"]), e["event_id"]  # exactly, in integers
        for name in ("fare", "wait_seconds", "surge"):
            assert (row[name] is None and e.get(name) is None) or math.isclose(row[name], e[name]), name
    # the corpus exercises both sides
    assert len(rejected) >= 25 and len(valid) >= 8
