"""Where the feature job's time goes: variants of its SQL over one JSONL file, batch mode, one JVM (.venv-flink).

    python -m benchmarks.flink_sql_cost SPEC.json OUT.json

SPEC is a ``flink_jobs.sql.JobSpec`` (batch mode) as JSON. Each variant is an INSERT into blackhole sinks, run
one after the other in the same TableEnvironment (one JVM start for all); each is timed by wall clock and by
the CPU seconds the JVM burnt (from /proc, so the figure holds on a loaded machine). A warm-up pass of the
first variant runs first so JIT compilation is not charged to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

from flink_jobs.sql import JobSpec, checked_view, features_query, sink_ddls, source_ddl, statements, valid_view


def _children_cpu_s() -> float:
    """user+system CPU seconds of this process's descendants that are alive (the JVM), via /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    parents: dict[int, int] = {}
    stats: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        parents[int(d)] = int(fields[1])
        stats[int(d)] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid in stats:
        p, hops = pid, 0
        while p not in (0, 1, me) and hops < 20:
            p, hops = parents.get(p, 0), hops + 1
        if p == me and pid != me:
            total += stats[pid]
    return total


def _blackhole(ddl: str) -> str:
    return ddl.split(") WITH (")[0] + ") WITH ('connector' = 'blackhole')"


def main(argv: list[str]) -> int:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    raw = json.loads(Path(argv[1]).read_text())
    names = {f.name for f in dataclasses.fields(JobSpec)}
    spec = JobSpec(**{k: v for k, v in raw.items() if k in names})
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    conf = t_env.get_config()
    for k, v in {"parallelism.default": "1", "rest.bind-address": "127.0.0.1", "rest.address": "127.0.0.1",
                 "table.local-time-zone": "UTC"}.items():
        conf.set(k, v)
    path = spec.input_path
    for stmt in (source_ddl(spec), checked_view(spec), valid_view(), *[_blackhole(d) for d in sink_ddls(spec)]):
        t_env.execute_sql(stmt)
    t_env.execute_sql(f"CREATE TEMPORARY TABLE plain (payload STRING) WITH ('connector'='filesystem', "
                      f"'path'='{path}', 'format'='raw', 'raw.charset'='UTF-8')")
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE typed (
  event_id STRING, schema_version BIGINT, event_time_ms BIGINT, event_type STRING, pickup_zone STRING,
  dropoff_zone STRING, fare DOUBLE, wait_seconds DOUBLE, surge DOUBLE,
  event_ts AS TO_TIMESTAMP_LTZ(event_time_ms, 3)
) WITH ('connector'='filesystem', 'path'='{path}', 'format'='json', 'json.ignore-parse-errors'='true')""")
    t_env.execute_sql("CREATE TEMPORARY TABLE bh_any (x STRING) WITH ('connector'='blackhole')")
    t_env.execute_sql("CREATE TEMPORARY TABLE bh_feat (" + re.sub(r"\s+", " ", _feat_cols()) +
                      ") WITH ('connector'='blackhole')")
    t_env.execute_sql("""CREATE TEMPORARY VIEW typed_events AS SELECT * FROM typed
  WHERE event_type <> 'heartbeat' AND event_ts IS NOT NULL""")
    t_env.execute_sql("""CREATE TEMPORARY VIEW jv_events AS SELECT
  JSON_VALUE(payload, '$.event_id') AS event_id,
  TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(payload, '$.event_time_ms') AS BIGINT), 3) AS event_ts,
  JSON_VALUE(payload, '$.event_type') AS event_type, JSON_VALUE(payload, '$.pickup_zone') AS pickup_zone,
  TRY_CAST(JSON_VALUE(payload, '$.fare') AS DOUBLE) AS fare,
  TRY_CAST(JSON_VALUE(payload, '$.wait_seconds') AS DOUBLE) AS wait_seconds,
  TRY_CAST(JSON_VALUE(payload, '$.surge') AS DOUBLE) AS surge
FROM plain WHERE JSON_VALUE(payload, '$.event_type') <> 'heartbeat'""")

    def feats(view: str) -> str:
        return re.sub(r"TABLE valid_events", f"TABLE {view}", features_query(spec))

    _, job_inserts = statements(spec)
    variants: list[tuple[str, list[str]]] = [
        ("scan raw lines (I/O floor)", ["INSERT INTO bh_any SELECT payload FROM plain"]),
        ("json format (1 parse) + HOP windows", [f"INSERT INTO bh_feat {feats('typed_events')}"]),
        ("JSON_VALUE x7 + HOP windows (no validation)", [f"INSERT INTO bh_feat {feats('jv_events')}"]),
        ("validation only (job's reason CASE)", ["INSERT INTO bh_any SELECT reason FROM checked"]),
        ("job's gold query only (validation + HOP)", [f"INSERT INTO bh_feat {features_query(spec)}"]),
        ("job's 4 inserts, blackhole sinks", job_inserts),
    ]
    lines = sum(1 for _ in open(path, "rb"))
    results = []

    def timed(name: str, inserts: list[str]) -> dict:
        ss = t_env.create_statement_set()
        for ins in inserts:
            ss.add_insert_sql(ins)
        c0, t0 = _children_cpu_s(), time.time()
        ss.execute().wait()
        wall, cpu = time.time() - t0, _children_cpu_s() - c0
        r = {"variant": name, "wall_s": wall, "jvm_cpu_s": cpu, "events_per_s": lines / wall,
             "events_per_cpu_s": lines / cpu if cpu > 0 else None}
        print(json.dumps(r), flush=True)
        return r

    timed("warm-up", variants[1][1])
    for name, inserts in variants:
        results.append(timed(name, inserts))
    Path(argv[2]).write_text(json.dumps({"lines": lines, "variants": results}, indent=1))
    return 0


def _feat_cols() -> str:
    from flink_jobs.sql import FEATURE_COLUMNS

    return FEATURE_COLUMNS


if __name__ == "__main__":
    sys.exit(main(sys.argv))
