"""The zone-features job: PyFlink driver. Runs in the Flink environment (.venv-flink), not the app one.

    python -m flink_jobs.zone_features SPEC.json

The app side (``ridecast.stack.pipeline``) creates the Iceberg tables, writes the spec, starts this under its
own process group and finds the checkpoint to restore. This module only wires configuration and submits the
statements from :mod:`flink_jobs.sql`; exactly-once comes from checkpointing: Iceberg's Flink sink commits the
files written up to a checkpoint once that checkpoint completes, and records the job id, its operator id and the
checkpoint id in the snapshot, which is how a restored (or rerun) job knows what is already in the table.
No Python function runs per record.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from flink_jobs.sql import JobSpec, statements


def load_spec(path: str) -> JobSpec:
    raw = json.loads(Path(path).read_text())
    names = {f.name for f in dataclasses.fields(JobSpec)}
    return JobSpec(**{k: v for k, v in raw.items() if k in names})


def _uri(location: str) -> str:
    """A location as Flink wants it: a URI stays as given (``s3://`` on a cluster), a local path becomes file://."""
    return location if "://" in location else Path(location).resolve().as_uri()


def restart_conf(spec: JobSpec) -> dict[str, str]:
    """The job's restart strategy. A job that cannot recover must fail visibly, not loop in RESTARTING. Set here,
    it wins over the cluster's (a FlinkDeployment's flinkConfiguration), so it comes from settings
    (flink.restart_*); exponential-delay keeps Flink's own multiplier, jitter and reset threshold."""
    if spec.restart_strategy == "exponential-delay":
        return {
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": f"{spec.restart_delay_s} s",
            "restart-strategy.exponential-delay.max-backoff": f"{spec.restart_max_delay_s} s",
            "restart-strategy.exponential-delay.attempts-before-reset-backoff": str(spec.restart_attempts),
        }
    if spec.restart_strategy != "fixed-delay":
        raise ValueError(f"unknown restart strategy {spec.restart_strategy!r}: fixed-delay or exponential-delay")
    return {
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(spec.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{spec.restart_delay_s} s",
    }


def flink_conf(spec: JobSpec) -> dict[str, str]:
    conf = {
        "table.local-time-zone": "UTC",
        "parallelism.default": str(spec.parallelism),
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        # the blob server of a local (MiniCluster) run binds jobmanager.bind-host, every interface by default; a
        # cluster's JobManager has bound its own before a job's configuration is read
        "jobmanager.bind-host": "127.0.0.1",
        "pipeline.name": f"ridecast-zone-features-{spec.mode}",
        **restart_conf(spec),
        "table.exec.source.idle-timeout": f"{spec.idle_timeout_s} s",
        "pipeline.object-reuse": "true",
        # Iceberg's Sink V2 (IcebergSink): its committer checks the table's snapshots for this job's last
        # committed checkpoint on every commit, not only after a restore, so a rerun cannot append twice
        "table.exec.iceberg.use-v2-sink": "true",
    }
    if spec.job_id:
        # A fixed job id: a batch rerun of the same input carries the same id, and the Iceberg committer then
        # finds its commits already in each table (flink.job-id + operator id). The key is Flink's
        # PipelineOptionsInternal.PIPELINE_FIXED_JOB_ID (what its application mode sets), marked internal.
        conf["$internal.pipeline.job-id"] = spec.job_id
    if spec.jars:
        conf["pipeline.jars"] = ";".join(_uri(j) for j in spec.jars)
    if spec.mode == "stream":
        conf.update({
            "execution.checkpointing.interval": f"{spec.checkpoint_interval_s} s",
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "execution.checkpointing.storage": "filesystem",
            "execution.checkpointing.dir": _uri(spec.checkpoint_dir),
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.num-retained": "3",
        })
        if spec.restore_path:
            conf["execution.state-recovery.path"] = _uri(spec.restore_path)
    return conf


def build(spec: JobSpec, conf_overrides: dict[str, str] | None = None,
          transform_after=lambda stmt: stmt):
    """(env, t_env, statements) with every table and view of the job registered, ready for the INSERTs.

    ``transform_after`` lets a benchmark swap the sinks (e.g. for blackholes) without a copy of this wiring.
    """
    from pyflink.common import Configuration
    from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    settings = {**flink_conf(spec), **(conf_overrides or {})}
    conf = Configuration()
    for key, value in settings.items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING if spec.mode == "stream" else RuntimeExecutionMode.BATCH)
    t_env = StreamTableEnvironment.create(env)
    for key, value in settings.items():
        t_env.get_config().set(key, value)

    job = statements(spec)
    for stmt in job.before:
        t_env.execute_sql(stmt)
    # The shared tables: parsed and checked once, read by every sink (see JobStatements).
    for name, select in job.shared:
        t_env.create_temporary_view(name, t_env.sql_query(select))
    for stmt in job.after:
        t_env.execute_sql(transform_after(stmt))
    return env, t_env, job


def main(argv: list[str]) -> int:
    spec = load_spec(argv[1])
    env, t_env, job = build(spec)
    stmt_set = t_env.create_statement_set()
    for insert in job.inserts:
        stmt_set.add_insert_sql(insert)
    stmt_set.attach_as_datastream()
    client = env.execute_async(f"ridecast-zone-features-{spec.mode}")
    print(f"RIDECAST_JOB_ID={client.get_job_id()}", flush=True)
    client.get_job_execution_result().result()
    print("RIDECAST_JOB_FINISHED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
