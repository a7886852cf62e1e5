"""The job's Java functions against the Python oracle, byte for byte, without Flink (one JVM, ~2 s).

``tests/test_job_contract.py`` runs the whole job over a JSONL file, which can only carry valid UTF-8 text. Kafka
carries bytes: here each message goes to the functions exactly as the raw format hands it over, including
invalid UTF-8, and thousands of seeded random corruptions of a valid event are judged by both sides. The
reason the job gives is the check function's, else ``ambiguous_event_time`` when the source's event time
(``EventTimeInText``) is not the parsed one, as ``flink_jobs.sql.parsed_views`` composes them.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
from pathlib import Path

import pytest

from flink_jobs.sql import JobSpec, rules_literal
from ridecast.config import Settings, repo_root
from ridecast.events import EVENT_TIME_IN_TEXT, Reason, load_zones, make_event, parse_message, reject_reason
from tests.integration.test_job_contract import NOW_MS, _corpus
from tests.streaming import hostile_messages

pytestmark = pytest.mark.integration

SKEW_MS, AGE_MS, MAX_BYTES = 900_000, 3650 * 86_400_000, 16_384


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """run(commands) -> output lines of tests/java/CheckOracle.java, compiled against the built jar."""
    settings = Settings()  # only install paths and the zone list are read
    lib = next((Path(settings.flink_python).parents[1] / "lib").glob("python3*/site-packages/pyflink/lib"))
    jar = settings.flink_jars_dir / "ridecast-udf.jar"
    if not jar.exists():
        pytest.fail(f"{jar} missing: run scripts/bootstrap.sh")
    cp = ":".join([str(jar), *(str(p) for p in lib.glob("flink-table-api-java-uber-*.jar")),
                   *(str(p) for p in lib.glob("flink-dist-*.jar"))])
    out = tmp_path_factory.mktemp("oracle")
    oracle = str(repo_root() / "tests/java/CheckOracle.java")
    subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(out), "-cp", cp, oracle], check=True)
    zones = [z.zone for z in load_zones(settings.zones_file)]
    spec = JobSpec(mode="batch", zones=zones, window_minutes=[15], slide_minutes=5,
                   watermark_delay_s=30, max_future_skew_s=SKEW_MS // 1000, max_event_age_days=AGE_MS // 86_400_000,
                   max_payload_bytes=MAX_BYTES)

    def run(commands: list[str], rules: str | None = None) -> list[str]:
        stdin = "\n".join([rules or rules_literal(spec), EVENT_TIME_IN_TEXT, *commands]) + "\n"
        proc = subprocess.run(["java", "-cp", f"{cp}:{out}", "CheckOracle"], input=stdin, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.splitlines()

    run.zones = set(zones)
    run.rules = rules_literal(spec)
    return run


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _job_reasons(oracle, messages: list[bytes]) -> list[tuple[str | None, str | None]]:
    """(reason, event_id) per message, as the job composes its checks."""
    lines = oracle([f"check {NOW_MS} {_b64(m)}" for m in messages]
                   + [f"time {NOW_MS} {SKEW_MS} {AGE_MS} {_b64(m)}" for m in messages])
    checks, times = lines[:len(messages)], lines[len(messages):]
    out = []
    for check, source_time in zip(checks, times):
        reason, event_id, event_time = (None if v == "null" else v for v in check.split("\t"))
        event_id = base64.b64decode(event_id).decode("utf-8", "replace") if event_id is not None else None
        if reason is None and source_time != event_time:
            reason = Reason.AMBIGUOUS_TIME
        out.append((reason, event_id))
    return out


def _assert_agrees(oracle, messages: list[bytes]) -> None:
    got = _job_reasons(oracle, messages)
    mismatches = []
    for raw, (reason, event_id) in zip(messages, got):
        want = reject_reason(raw, oracle.zones, now_ms=NOW_MS, max_future_skew_s=SKEW_MS // 1000,
                             max_event_age_days=AGE_MS // 86_400_000, max_payload_bytes=MAX_BYTES)
        if reason != want:
            mismatches.append((raw[:200], reason, want))
        elif want is None:
            parsed = parse_message(raw)
            if event_id != parsed["event_id"]:
                mismatches.append((raw[:200], event_id, parsed["event_id"]))
    assert not mismatches, f"{len(mismatches)} of {len(messages)} differ, e.g. {mismatches[:5]}"


def test_edge_cases_and_raw_bytes_are_judged_as_the_oracle_judges_them(oracle):
    ok = make_event("bytes", NOW_MS - 3_600_000, "requested", "TAMPINES", dropoff_zone="BEDOK")
    text = json.dumps(ok)
    messages = [line.encode() for line in _corpus()]
    messages += [raw for raw, _ in hostile_messages("TAMPINES", NOW_MS - 3_600_000) if raw is not None]
    messages += [
        text.replace('"bytes"', '"b\xe9"').encode("latin-1"),  # invalid UTF-8 inside a field the job reads
        text.replace('"bytes"', '"b\\u00e9"').encode(),
        text[:-1].encode() + b', "note": "\xff\xfe"}',  # invalid UTF-8 in a field nobody reads
        b"\xef\xbb\xbf" + text.encode(),  # a byte-order mark before the object
        text.encode().replace(b" ", b"\xc2\xa0", 1),  # a non-breaking space where JSON wants whitespace
        text.replace('"bytes"', '"\\ud800"').encode(),  # a lone surrogate escape
        text.replace('"bytes"', '"a\\u0000b"').encode(),
        text.replace('"TAMPINES"', '"TAMPINES\\u0000"').encode(),
        text.replace('"bytes"', '"' + "\u2603" * 64 + '"').encode(),  # 64 chars, 192 bytes: not too long
        text.replace('"bytes"', '"' + "\u2603" * 65 + '"').encode(),
        text.replace('"bytes"', '"\U0001f600"').encode(),  # one code point, two UTF-16 units
        (text[:-1] + ', "pad": "' + "x" * MAX_BYTES + '"}').encode(),  # too large
        b'{"event_id": "deep", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ]
    _assert_agrees(oracle, messages)


def test_seeded_random_corruptions_are_judged_as_the_oracle_judges_them(oracle):
    rng = random.Random(20261122)
    base = [json.dumps(make_event(f"r{i}", NOW_MS - rng.randrange(1, 10**8), rng.choice(["requested", "completed"]),
                                  "TAMPINES", dropoff_zone="BEDOK", fare=round(rng.uniform(5, 40), 2),
                                  wait_seconds=float(rng.randrange(0, 600)), surge=1.2),
                       separators=rng.choice([(",", ":"), (", ", ": ")])).encode() for i in range(50)]
    alphabet = b'{}[]":,.-+eE0123456789 \t\nabcnulltrue\\\xc3\xa9\xff'
    messages = []
    for _ in range(3000):
        m = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(m) + 1)
            op = rng.random()
            if op < 0.4:
                m[pos:pos + 1] = bytes([rng.choice(alphabet)])
            elif op < 0.7:
                m[pos:pos] = bytes([rng.choice(alphabet)])
            else:
                del m[pos:pos + rng.randint(1, 4)]
        messages.append(bytes(m))
    _assert_agrees(oracle, messages)
    # the corruptions exercise both sides
    reasons = [r for r, _ in _job_reasons(oracle, messages)]
    assert reasons.count(None) > 50 and len(set(reasons)) > 8


def test_an_internal_failure_of_the_checker_has_its_own_reason(oracle):
    """A checker bug must not pass for bad input: rules that do not fit the Java class (here the event id declared
    a number, which the check then reads as text) make it fail inside, on a message that is well-formed JSON."""
    rules = json.loads(oracle.rules)
    for f in rules["fields"]:
        if f["name"] == "event_id":
            f["kind"] = "long"
    broken = json.dumps(rules)
    numeric_id = json.dumps({**make_event("x", NOW_MS - 60_000, "requested", "TAMPINES"), "event_id": 12}).encode()
    text_id = json.dumps(make_event("x", NOW_MS - 60_000, "requested", "TAMPINES")).encode()
    lines = oracle([f"check {NOW_MS} {_b64(m)}" for m in (numeric_id, text_id, b"{not json")], rules=broken)
    reasons = [line.split("\t")[0] for line in lines]
    assert reasons == [Reason.CHECKER_ERROR, "wrong_type:event_id", Reason.INVALID_JSON]
    # the values of a message the checker failed on are not passed on
    assert lines[0].split("\t")[1:] == ["null", "null"]
    # and with the real rules the same message is judged by the contract
    assert oracle([f"check {NOW_MS} {_b64(numeric_id)}"])[0].split("\t")[0] == "wrong_type:event_id"


def test_rules_without_the_checker_error_reason_are_refused(oracle):
    rules = json.loads(oracle.rules)
    del rules["reasons"]["checker_error"]
    with pytest.raises(AssertionError, match="no checker_error reason"):
        oracle([f"check {NOW_MS} {_b64(b'{}')}"], rules=json.dumps(rules))
