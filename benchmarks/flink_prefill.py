"""Bounded PyFlink job: copy a JSONL file into a Kafka topic, one line per message (runs in .venv-flink).

    python -m benchmarks.flink_prefill SPEC.json     # {"input_path", "bootstrap_servers", "topic", "jars"}

kafka-python is client-bound at ~8-10k msg/s per core; the Java producer inside Flink's Kafka sink does
~50k msg/s on the same broker (PLATFORM.md), so prefilling 1M events this way costs ~30 s of job start plus
~20 s instead of ~2 minutes. Only the throughput benchmark uses it; the events topic has one partition, so
no message key is needed to keep order (parallelism 1 reads the single file in order).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    spec = json.loads(Path(argv[1]).read_text())
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    for k, v in {
        "parallelism.default": "1",
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        "pipeline.name": "ridecast-bench-prefill",
        "pipeline.jars": ";".join(Path(j).resolve().as_uri() for j in spec["jars"]),
    }.items():
        conf.set(k, v)
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE src (payload STRING) WITH (
  'connector' = 'filesystem', 'path' = '{spec["input_path"]}', 'format' = 'raw', 'raw.charset' = 'UTF-8')""")
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE dst (payload STRING) WITH (
  'connector' = 'kafka', 'topic' = '{spec["topic"]}',
  'properties.bootstrap.servers' = '{spec["bootstrap_servers"]}',
  'properties.linger.ms' = '20', 'properties.batch.size' = '524288', 'properties.acks' = 'all',
  'sink.delivery-guarantee' = 'at-least-once', 'format' = 'raw', 'raw.charset' = 'UTF-8')""")
    t_env.execute_sql("INSERT INTO dst SELECT payload FROM src").wait()
    print("RIDECAST_PREFILL_DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
