"""Where the feature job's time goes: variants of its SQL over one JSONL file, batch mode, one JVM (.venv-flink).

    python -m benchmarks.flink_sql_cost SPEC.json OUT.json

SPEC is a ``flink_jobs.sql.JobSpec`` (batch mode) as JSON. The environment mirrors the job's driver
(``flink_jobs.zone_features``): a ``StreamTableEnvironment`` over a ``StreamExecutionEnvironment`` in BATCH
runtime mode, the job's ``before`` statements, the same shared tables that register the ``shared`` SELECTs
(``checked``, ``valid_events``, ``rejected``), then the job's ``after`` statements with every sink replaced by a
blackhole. Each variant is a statement set attached to the DataStream environment and run by ``env.execute``,
one after the other in the same JVM (one JVM start for all); each is timed by wall clock and by the CPU seconds
the JVM burnt (from /proc, so the figure holds on a loaded machine). A warm-up pass of the baseline runs first
so JIT compilation is not charged to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

from flink_jobs.sql import FEATURE_COLUMNS, JobSpec, features_query, slices_query
from flink_jobs.zone_features import build

BASELINE = "json_hop"


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
    """A sink DDL of the job with its connector replaced by a blackhole (same name, same columns)."""
    if not ddl.lstrip().startswith("CREATE TEMPORARY TABLE"):  # the views pass through
        return ddl
    return ddl.split(") WITH (")[0] + ") WITH ('connector' = 'blackhole')"


def main(argv: list[str]) -> int:

    raw = json.loads(Path(argv[1]).read_text())
    names = {f.name for f in dataclasses.fields(JobSpec)}
    spec = JobSpec(**{k: v for k, v in raw.items() if k in names})
    assert spec.mode == "batch", "sql_cost runs the batch variant of the job"
    spec.parallelism = 1

    # --- the driver's own wiring, with blackhole sinks
    env, t_env, job = build(spec, {"pipeline.name": "ridecast-sql-cost"}, transform_after=_blackhole)

    # --- reference pieces that are not the job's
    path = spec.input_path
    t_env.execute_sql(f"CREATE TEMPORARY TABLE plain (payload STRING) WITH ('connector'='filesystem', "
                      f"'path'='{path}', 'format'='raw', 'raw.charset'='UTF-8')")
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE json_typed (
  event_id STRING, schema_version BIGINT, event_time_ms BIGINT, event_type STRING, pickup_zone STRING,
  dropoff_zone STRING, fare DOUBLE, wait_seconds DOUBLE, surge DOUBLE,
  event_ts AS TO_TIMESTAMP_LTZ(event_time_ms, 3)
) WITH ('connector'='filesystem', 'path'='{path}', 'format'='json', 'json.ignore-parse-errors'='true')""")
    t_env.execute_sql("CREATE TEMPORARY TABLE bh_any (x STRING) WITH ('connector'='blackhole')")
    t_env.execute_sql("CREATE TEMPORARY TABLE bh_feat (" + re.sub(r"\s+", " ", FEATURE_COLUMNS) +
                      ") WITH ('connector'='blackhole')")
    t_env.execute_sql("""CREATE TEMPORARY VIEW json_events AS SELECT * FROM json_typed
  WHERE event_type <> 'heartbeat' AND event_ts IS NOT NULL""")
    t_env.execute_sql("""CREATE TEMPORARY VIEW jv_events AS SELECT
  JSON_VALUE(payload, '$.event_id') AS event_id,
  TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(payload, '$.event_time_ms') AS BIGINT), 3) AS event_ts,
  JSON_VALUE(payload, '$.event_type') AS event_type, JSON_VALUE(payload, '$.pickup_zone') AS pickup_zone,
  TRY_CAST(JSON_VALUE(payload, '$.fare') AS DOUBLE) AS fare,
  TRY_CAST(JSON_VALUE(payload, '$.wait_seconds') AS DOUBLE) AS wait_seconds,
  TRY_CAST(JSON_VALUE(payload, '$.surge') AS DOUBLE) AS surge
FROM plain WHERE JSON_VALUE(payload, '$.event_type') <> 'heartbeat'""")

    def feats(view: str) -> str:  # the job's windows over another event view
        t_env.execute_sql(f"CREATE TEMPORARY VIEW {view}_slices AS {slices_query(spec, view)}")
        return features_query(spec, slices=f"{view}_slices")

    features = features_query(spec)
    # (id, label, inserts). Ids are stable keys for sql_cost.py / README; the baseline is BASELINE.
    variants: list[tuple[str, str, list[str]]] = [
        ("scan", "scan raw lines (I/O + per-job floor)", ["INSERT INTO bh_any SELECT payload FROM plain"]),
        (BASELINE, "json format (1 parse) + the job's HOP windows", [f"INSERT INTO bh_feat {feats('json_events')}"]),
        ("jv_hop", "JSON_VALUE x7 + HOP windows, no validation", [f"INSERT INTO bh_feat {feats('jv_events')}"]),
        ("parse_validate_inline", "job's parse + validation, no shared view (checked_raw)",
         ["INSERT INTO bh_any SELECT reason FROM checked_raw"]),
        ("parse_validate", "job's parse + validation through the shared view",
         ["INSERT INTO bh_any SELECT reason FROM checked"]),
        ("gold", "job's gold query (shared view + HOP)", [f"INSERT INTO bh_feat {features}"]),
        ("job", f"job's {len(job.inserts)} inserts into Iceberg (its Flink sink)", list(job.inserts)),
    ]
    lines = sum(1 for _ in open(path, "rb"))
    results = []

    def timed(vid: str, label: str, inserts: list[str]) -> dict:
        ss = t_env.create_statement_set()
        for ins in inserts:
            ss.add_insert_sql(ins)
        c0, t0 = _children_cpu_s(), time.time()
        ss.attach_as_datastream()
        env.execute(f"ridecast-sql-cost-{vid}")
        wall, cpu = time.time() - t0, _children_cpu_s() - c0
        r = {"id": vid, "variant": label, "wall_s": wall, "jvm_cpu_s": cpu, "events_per_s": lines / wall,
             "events_per_cpu_s": lines / cpu if cpu > 0 else None}
        print(json.dumps(r), flush=True)
        return r

    base = next(v for v in variants if v[0] == BASELINE)
    timed("warm-up", "warm-up (" + base[1] + ")", base[2])
    for vid, label, inserts in variants:
        results.append(timed(vid, label, inserts))
    Path(argv[2]).write_text(json.dumps({"lines": lines, "baseline": BASELINE, "variants": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
