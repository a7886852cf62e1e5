"""The feature job's SQL, rendered without a JVM: generated from the event contract, one parse per field."""

from __future__ import annotations

import dataclasses

import pytest

from flink_jobs.sql import JobSpec, statements
from ridecast.events import FIELDS, Reason
from ridecast.pipeline import job_spec

pytestmark = pytest.mark.unit


def _spec(**kw) -> JobSpec:
    base = dict(mode="stream", staging_dir="/s", zones=["A", "B'C"], window_minutes=[15, 60], slide_minutes=5,
                watermark_delay_s=30, max_future_skew_s=900, max_event_age_days=10, max_payload_bytes=4096)
    return JobSpec(**{**base, **kw})


def test_every_field_is_parsed_exactly_once_and_checked():
    job = statements(_spec())
    sql = "\n".join(job.before)
    assert sql.count("TRY_PARSE_JSON(") == 1 and "JSON_QUERY" not in sql
    for f in FIELDS:
        assert sql.count(f"JSON_STRING(doc['{f.name}'])") == 1, f.name
        assert f"'{Reason.WRONG_TYPE}:{f.name}'" in sql
        if f.required:
            assert f"'{Reason.MISSING}:{f.name}'" in sql
    for reason in (Reason.INVALID_JSON, Reason.TOO_LARGE, Reason.UNKNOWN_ZONE, Reason.FUTURE, Reason.TOO_OLD,
                   Reason.BAD_VERSION, Reason.BAD_TYPE):
        assert f"'{reason}'" in sql
    assert "'B''C'" in sql  # zone codes are quoted, not injected


def test_stream_has_online_and_dlq_topics_and_batch_does_not():
    stream, batch = statements(_spec()), statements(_spec(mode="batch", input_path="/x.jsonl", source_name="x"))
    assert any("online_features" in i for i in stream.inserts) and any("dlq_topic" in i for i in stream.inserts)
    assert not any("online_features" in i or "dlq_topic" in i for i in batch.inserts)
    assert "CURRENT_WATERMARK" in "\n".join(stream.after) and "CURRENT_WATERMARK" not in "\n".join(batch.after)
    assert "'connector' = 'kafka'" in stream.before[0] and "'connector' = 'filesystem'" in batch.before[0]


def test_windows_follow_settings():
    sql = "\n".join(statements(_spec(window_minutes=[10, 30], slide_minutes=10)).inserts)
    assert "INTERVAL '10' MINUTE,\n               INTERVAL '30' MINUTE" in sql
    assert "INTERVAL '10' MINUTE,\n               INTERVAL '10' MINUTE" in sql


def test_job_spec_comes_from_settings(settings, monkeypatch):
    s = settings.model_copy(update={"flink": settings.flink.model_copy(update={"window_minutes": [5, 20]})})
    spec = job_spec(s, "batch")
    assert spec.window_minutes == [5, 20] and spec.staging_dir.endswith("staging/stream")
    assert len(spec.zones) == 55 and all(j.endswith(".jar") for j in spec.jars)
    assert set(dataclasses.asdict(spec)) == {f.name for f in dataclasses.fields(JobSpec)}
