"""The feature job's SQL, rendered without a JVM: generated from the event contract, one parse per field."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from flink_jobs.sql import (
    CHECK_CLASS,
    CHECK_FIELDS,
    CHECK_FUNCTION,
    EVENT_TIME_FUNCTION,
    ICEBERG_SINKS,
    JobSpec,
    catalog_ddl,
    function_ddls,
    rules_literal,
    statements,
)
from iceberg_catalog.catalog import UnsupportedCatalogError, flink_catalog_options
from iceberg_catalog.tables import TABLES
from ridecast.config import FlinkSettings
from ridecast.events import EVENT_TIME_IN_TEXT, FIELDS, Reason
from ridecast.stack.pipeline import JOB_TABLES, job_jars, job_spec, system_jars

pytestmark = pytest.mark.unit


def _spec(**kw) -> JobSpec:
    base = dict(mode="stream", catalog_name="cat", catalog_options={"catalog-impl": "X", "uri": "jdbc:sqlite:/c"},
                zones=["A", "B'C"], window_minutes=[15, 60], slide_minutes=5,
                watermark_delay_s=30, max_future_skew_s=900, max_event_age_days=10, max_payload_bytes=4096)
    return JobSpec(**{**base, **kw})


def test_every_message_is_checked_once_by_the_contract_rules():
    spec = _spec()
    job = statements(spec)
    sql = "\n".join(job.before)
    assert job.before[:2] == function_ddls() and CHECK_CLASS in job.before[0]
    assert sql.count(f"{CHECK_FUNCTION}(") == 1  # once per message, behind the RAND() guard
    assert "TRY_PARSE_JSON" not in sql and "JSON_VALUE" not in sql
    rules = json.loads(rules_literal(spec))
    assert [f["name"] for f in rules["fields"]] == [f.name for f in FIELDS]
    for f, r in zip(FIELDS, rules["fields"]):
        assert (r["kind"], r["required"]) == (f.kind, f.required)
        assert r["missing"] == f"{Reason.MISSING}:{f.name}" and r["wrong_type"] == f"{Reason.WRONG_TYPE}:{f.name}"
    assert rules["zones"] == ["A", "B'C"] and rules["max_event_age_ms"] == 10 * 86_400_000
    assert set(rules["reasons"].values()) == {Reason.INVALID_JSON, Reason.TOO_LARGE, Reason.BAD_VERSION,
                                              Reason.ID_TOO_LONG, Reason.BAD_TYPE, Reason.UNKNOWN_ZONE, Reason.FUTURE,
                                              Reason.TOO_OLD, Reason.CHECKER_ERROR}
    # the checks the SQL keeps around the call
    for reason in (Reason.INVALID_JSON, Reason.AMBIGUOUS_TIME):
        assert f"'{reason}'" in sql
    assert "\"B''C\"" in sql  # the rules literal is quoted, not injected
    # every output column of the function is read, and only those
    assert all(f"p.r.{name} AS v_{name}" in sql for name in CHECK_FIELDS)


def test_the_java_check_reads_the_fields_the_sql_expects():
    src = (Path(__file__).parents[2] / "flink_jobs/udf/src" / (CHECK_CLASS.replace(".", "/") + ".java")).read_text()
    row = re.search(r'ROW = "ROW<(.*?)>";', src.replace('"\n            + "', "").replace('" + "', ""), re.S)
    assert row, "CheckEvent.ROW not found"
    names = [col.split()[0] for col in row.group(1).split(", ")]
    assert names == ["reason", *CHECK_FIELDS, "payload"]


def test_stream_has_online_and_dlq_topics_and_batch_does_not():
    stream, batch = statements(_spec()), statements(_spec(mode="batch", input_path="/x.jsonl", source_name="x"))
    assert any("online_features" in i for i in stream.inserts) and any("dlq_topic" in i for i in stream.inserts)
    assert not any("online_features" in i or "dlq_topic" in i for i in batch.inserts)
    lateness = [sql for _, sql in stream.shared if "CURRENT_WATERMARK" in sql]
    assert [name for name, sql in stream.shared if sql in lateness] == ["checked"]  # judged once, shared
    assert not any("CURRENT_WATERMARK" in sql for _, sql in batch.shared)
    # the payload reaches only the sinks that keep it: bronze (all) and the dead letters
    assert [name for name, sql in stream.shared if "payload" in sql.split("FROM")[0]] == ["checked", "rejected"]
    assert "'connector' = 'kafka'" in stream.before[3] and "'connector' = 'filesystem'" in batch.before[3]


def test_windows_follow_settings_and_share_one_aggregation_per_event():
    job = statements(_spec(window_minutes=[10, 30], slide_minutes=10))
    sql = "\n".join(job.inserts)
    assert "INTERVAL '10' MINUTE,\n               INTERVAL '30' MINUTE" in sql
    assert "INTERVAL '10' MINUTE,\n               INTERVAL '10' MINUTE" in sql
    # events are aggregated once, per slide; every window is built from those slices
    slices = dict(job.shared)["zone_slices"]
    assert "TUMBLE(TABLE valid_events, DESCRIPTOR(event_ts), INTERVAL '10' MINUTE)" in slices
    assert "TABLE valid_events" not in sql and sql.count("HOP(TABLE zone_slices") == 4  # gold + online, 2 each


def test_a_window_that_is_not_a_multiple_of_the_slide_is_refused():
    with pytest.raises(ValueError, match="multiple"):
        statements(_spec(window_minutes=[15, 60], slide_minutes=10))
    with pytest.raises(ValueError, match="multiples of slide_minutes"):
        FlinkSettings(window_minutes=[15], slide_minutes=10)


def test_job_spec_comes_from_settings(settings, monkeypatch):
    s = settings.model_copy(update={"flink": settings.flink.model_copy(update={"window_minutes": [5, 20]})})
    spec = job_spec(s, "batch")
    assert spec.window_minutes == [5, 20] and spec.catalog_name == settings.catalog.name
    assert spec.catalog_options["uri"] == f"jdbc:sqlite:{settings.state_dir / 'catalog.db'}"
    assert spec.catalog_options["warehouse"] == settings.warehouse
    assert len(spec.zones) == 55 and all(j.endswith(".jar") for j in spec.jars)
    # Hadoop and the JDBC drivers go on the JVM's classpath, never on pipeline.jars (see SYSTEM_JARS)
    assert not set(map(str, system_jars(settings))) & set(spec.jars)
    assert [str(p) for p in job_jars(settings)] == spec.jars
    assert set(dataclasses.asdict(spec)) == {f.name for f in dataclasses.fields(JobSpec)}


def test_the_restart_strategy_comes_from_settings_into_the_jobs_own_configuration(settings, monkeypatch):
    """The job sets its restart strategy itself (a job's configuration wins over the cluster's), so it must come from
    settings: RIDECAST_FLINK__RESTART_* (the chart's flink.restart) -> job spec -> Flink configuration."""
    from flink_jobs.zone_features import flink_conf

    defaults = flink_conf(job_spec(settings, "batch"))
    assert (defaults["restart-strategy.type"], defaults["restart-strategy.fixed-delay.attempts"],
            defaults["restart-strategy.fixed-delay.delay"]) == ("fixed-delay", "3", "2 s")
    monkeypatch.setenv("RIDECAST_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")  # a stream spec names its broker
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_ATTEMPTS", "12")
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_DELAY_S", "45")
    s = type(settings)(home=settings.home)
    spec = job_spec(s, "stream")
    assert (spec.restart_attempts, spec.restart_delay_s) == (12, 45)
    conf = flink_conf(spec)
    assert (conf["restart-strategy.fixed-delay.attempts"], conf["restart-strategy.fixed-delay.delay"]) == ("12", "45 s")
    assert flink_conf(job_spec(s, "batch"))["restart-strategy.fixed-delay.attempts"] == "12"  # backfills too
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_STRATEGY", "exponential-delay")
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_MAX_DELAY_S", "300")
    conf = flink_conf(job_spec(type(settings)(home=settings.home), "stream"))
    assert {k: v for k, v in conf.items() if k.startswith("restart-strategy.")} == {
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "45 s",
        "restart-strategy.exponential-delay.max-backoff": "300 s",
        "restart-strategy.exponential-delay.attempts-before-reset-backoff": "12",
    }
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_MAX_DELAY_S", "30")  # shorter than the first wait
    with pytest.raises(ValueError, match="restart_max_delay_s"):
        type(settings)(home=settings.home)
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_STRATEGY", "failure-rate")
    with pytest.raises(ValueError, match="restart_strategy"):
        type(settings)(home=settings.home)
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_STRATEGY", "fixed-delay")
    monkeypatch.setenv("RIDECAST_FLINK__RESTART_ATTEMPTS", "-1")
    with pytest.raises(ValueError, match="restart_attempts"):
        type(settings)(home=settings.home)


def test_source_reads_event_time_once_with_the_contract_pattern():
    source = statements(_spec()).before[3]
    assert source.startswith("CREATE TEMPORARY TABLE raw_events")
    assert source.count(f"{EVENT_TIME_FUNCTION}(") == 1
    assert "'" + EVENT_TIME_IN_TEXT.replace("'", "''") + "'" in source
    assert "REGEXP" not in source and "POSITION" not in source  # no per-record SQL string scans left


_FLINK_TYPES = {"StringType": "STRING", "LongType": "BIGINT", "IntegerType": "INT", "DoubleType": "DOUBLE",
                "TimestamptzType": "TIMESTAMP_LTZ(6)"}


@pytest.mark.parametrize("ident", JOB_TABLES)
def test_the_job_writes_every_iceberg_column_with_the_tables_own_type(ident):
    """The job's view of each table (flink_jobs.sql, no pyiceberg there) is the pyiceberg schema in Flink's
    types: a drift would fail the INSERT's validation, or silently widen a timestamp, only at job start."""
    table = TABLES[ident]
    want = [(f.name, _FLINK_TYPES[type(f.field_type).__name__] + (" NOT NULL" if f.required else ""))
            for f in table.schema.fields]
    assert list(ICEBERG_SINKS[ident]) == want
    insert = next(i for i in statements(_spec()).inserts
                  if i.startswith(f"INSERT INTO `cat`.`{table.namespace}`.`{table.name}`\n"))
    cast = re.findall(r"AS ([A-Z_]+(?:\(\d\))?)\) AS (\w+)", insert.split("\nFROM ")[0])
    assert cast == [(typ.removesuffix(" NOT NULL"), name) for name, typ in want]


def test_the_catalog_is_the_one_pyiceberg_opens(settings):
    """Same catalog name and warehouse on both sides; the SQLAlchemy URI becomes a JDBC URL plus credentials."""
    ddl = catalog_ddl(_spec(catalog_name="my`cat", catalog_options=flink_catalog_options(settings)))
    assert ddl.startswith("CREATE CATALOG IF NOT EXISTS `my``cat` WITH (")
    assert "'catalog-impl' = 'org.apache.iceberg.jdbc.JdbcCatalog'" in ddl and "'jdbc.schema-version' = 'V1'" in ddl
    pg_uri = "postgresql+psycopg2://u:p%40ss@h:6543/db"
    pg = settings.model_copy(update={"catalog": settings.catalog.model_copy(update={"uri": pg_uri})})
    opts = flink_catalog_options(pg)
    assert (opts["uri"], opts["jdbc.user"], opts["jdbc.password"]) == ("jdbc:postgresql://h:6543/db", "u", "p@ss")
    assert opts["warehouse"] == settings.warehouse and "jdbc.busy_timeout" not in opts
    mem = settings.model_copy(update={"catalog": settings.catalog.model_copy(update={"uri": "sqlite:///:memory:"})})
    with pytest.raises(UnsupportedCatalogError, match="share a file"):
        flink_catalog_options(mem)
    with pytest.raises(ValueError, match="catalog_options is empty"):
        catalog_ddl(_spec(catalog_options={}))


def test_the_driver_reads_its_spec_and_configures_flink_from_it(tmp_path):
    """flink_jobs.zone_features without PyFlink: the spec file round-trip and the Flink configuration."""
    from flink_jobs.zone_features import flink_conf, load_spec

    spec = _spec(checkpoint_dir=str(tmp_path / "chk"), restore_path=str(tmp_path / "chk" / "j" / "chk-3"),
                 jars=[str(tmp_path / "a.jar")], parallelism=2)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**dataclasses.asdict(spec), "from_a_newer_app": 1}))  # unknown keys ignored
    assert load_spec(str(path)) == spec
    conf = flink_conf(spec)
    assert conf["parallelism.default"] == "2" and conf["table.local-time-zone"] == "UTC"
    assert conf["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert conf["execution.state-recovery.path"] == (tmp_path / "chk" / "j" / "chk-3").as_uri()
    assert conf["pipeline.jars"] == (tmp_path / "a.jar").as_uri()
    assert conf["table.exec.iceberg.use-v2-sink"] == "true" and "$internal.pipeline.job-id" not in conf
    batch = flink_conf(_spec(mode="batch"))
    assert not any(k.startswith("execution.") for k in batch) and "pipeline.jars" not in batch
    # a backfill's fixed job id: how Iceberg's committer recognises a rerun's commits
    assert flink_conf(_spec(mode="batch", job_id="ab" * 16))["$internal.pipeline.job-id"] == "ab" * 16
    # on a cluster the checkpoints live in object storage: a URI is kept as given, not made a local path
    remote = flink_conf(_spec(checkpoint_dir="s3://lake/flink/checkpoints", restore_path="s3://lake/flink/x/chk-2"))
    assert remote["execution.checkpointing.dir"] == "s3://lake/flink/checkpoints"
    assert remote["execution.state-recovery.path"] == "s3://lake/flink/x/chk-2"


def test_rules_carry_every_reason_the_java_check_reads():
    reasons = json.loads(rules_literal(_spec()))["reasons"]
    assert reasons["checker_error"] == Reason.CHECKER_ERROR
    assert reasons["invalid_json"] == Reason.INVALID_JSON and reasons["too_old"] == Reason.TOO_OLD
    java = (Path(__file__).parents[2] / "flink_jobs/udf/src/ridecast/flink/CheckEvent.java").read_text()
    assert set(re.findall(r'reasons\.get\("(\w+)"\)', java)) == set(reasons)


def test_batch_reads_a_file_with_a_fixed_clock_and_no_lateness():
    spec = _spec(mode="batch", input_path="/data/in.jsonl", source_name="in.jsonl#abc", now_ms=1234)
    job = statements(spec)
    sql = "\n".join(job.before)
    assert "'connector' = 'filesystem'" in sql and "'path' = '/data/in.jsonl'" in sql
    assert "'file:in.jsonl#abc'" in sql and "UNIX_TIMESTAMP" not in sql and ", 1234," in sql
    checked = dict(job.shared)["checked"]
    assert "CURRENT_WATERMARK" not in checked and "0 AS is_late" in checked
