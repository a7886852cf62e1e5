"""Bounded PyFlink job: read the events topic with the feature job's own Kafka source into a blackhole.

    python -m benchmarks.flink_source_ceiling SPEC.json     # a flink_jobs.sql.JobSpec (stream mode) as JSON

The throughput benchmark's ceiling baseline: what one slot can read from this broker at all, before any
parsing, validation, windows or sinks. The source DDL is the job's (``flink_jobs.sql.source_ddl``), made
bounded at the topic's latest offset (Tansu reports the last batch's base offset + 1 there, so the final
batch may be left unread; the benchmark counts what was read).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from flink_jobs.sql import JobSpec, function_ddls, source_ddl
from flink_jobs.zone_features import flink_conf


def main(argv: list[str]) -> int:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    raw = json.loads(Path(argv[1]).read_text())
    spec = JobSpec(**{k: v for k, v in raw.items() if k in {f.name for f in dataclasses.fields(JobSpec)}})
    spec.startup_mode = "earliest-offset"
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = flink_conf(spec)
    conf.update({"pipeline.name": "ridecast-bench-source-ceiling", "parallelism.default": "1"})
    conf = {k: v for k, v in conf.items() if not k.startswith("execution.checkpointing")
            and k != "execution.state-recovery.path"}
    for k, v in conf.items():
        t_env.get_config().set(k, v)
    ddl = source_ddl(spec).replace("'format' = 'raw'", "'scan.bounded.mode' = 'latest-offset',\n  'format' = 'raw'")
    for fn in function_ddls():  # the source's event time is read by one of the job's functions
        t_env.execute_sql(fn)
    t_env.execute_sql(ddl)
    t_env.execute_sql("CREATE TEMPORARY TABLE sink (message BYTES, o BIGINT) WITH ('connector' = 'blackhole')")
    t_env.execute_sql("INSERT INTO sink SELECT message, kafka_offset FROM raw_events").wait()
    print("RIDECAST_CEILING_DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
