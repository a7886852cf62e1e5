"""The zone-features job: PyFlink driver. Runs in the Flink environment (.venv-flink), not the app one.

    python -m flink_jobs.zone_features SPEC.json

The app side (``ridecast.pipeline``) writes the spec, starts this under its own process group, finds the
checkpoint to restore, and commits the finalized files to Iceberg. This module only wires configuration and
submits the statements from :mod:`flink_jobs.sql`; exactly-once comes from checkpointing: file sinks finalize
their part files only when a checkpoint completes, and the committer appends each finalized file once.
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


def configure(t_env, spec: JobSpec) -> None:
    conf = t_env.get_config()
    settings = {
        "table.local-time-zone": "UTC",
        "parallelism.default": str(spec.parallelism),
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        "pipeline.name": f"ridecast-zone-features-{spec.mode}",
        # a job that cannot recover must fail visibly, not loop in RESTARTING
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2 s",
        "table.exec.source.idle-timeout": f"{spec.idle_timeout_s} s",
    }
    if spec.jars:
        settings["pipeline.jars"] = ";".join(Path(j).resolve().as_uri() for j in spec.jars)
    if spec.mode == "stream":
        settings.update({
            "execution.checkpointing.interval": f"{spec.checkpoint_interval_s} s",
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "execution.checkpointing.storage": "filesystem",
            "execution.checkpointing.dir": Path(spec.checkpoint_dir).resolve().as_uri(),
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.num-retained": "3",
        })
        if spec.restore_path:
            settings["execution.state-recovery.path"] = Path(spec.restore_path).resolve().as_uri()
    for key, value in settings.items():
        conf.set(key, value)


def main(argv: list[str]) -> int:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    spec = load_spec(argv[1])
    mode = EnvironmentSettings.in_streaming_mode() if spec.mode == "stream" else EnvironmentSettings.in_batch_mode()
    t_env = TableEnvironment.create(mode)
    configure(t_env, spec)
    ddl, inserts = statements(spec)
    for stmt in ddl:
        t_env.execute_sql(stmt)
    stmt_set = t_env.create_statement_set()
    for insert in inserts:
        stmt_set.add_insert_sql(insert)
    result = stmt_set.execute()
    client = result.get_job_client()
    if client is not None:
        print(f"RIDECAST_JOB_ID={client.get_job_id()}", flush=True)
    result.wait()
    print("RIDECAST_JOB_FINISHED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
