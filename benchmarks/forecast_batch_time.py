"""How long ``ridecast forecast-batch`` takes for every zone x horizon (55 zones x 15/30/60 min by default).

    .venv/bin/python -m benchmarks.forecast_batch_time            # simulate 29 days into a throw-away lake
    .venv/bin/python -m benchmarks.forecast_batch_time --in-place # on the configured lake (champions must exist)

Without ``--in-place``: simulates 29 days with ``ridecast.sources.simulate`` into a throw-away lake through the test
fixture that mirrors the feature job's silver/gold contract, trains champions single-process with a
one-day backtest, then runs ``forecast_batch`` ``--repeat`` times. Each run reads
~29 days of silver/gold with pyiceberg, builds features, loads the champions from MLflow, writes
gold.forecasts (atomic overwrite of that cut-off) and joins closed forecasts into gold.forecast_accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta, timezone

from benchmarks.common import bench_settings, print_table, write_result


def _measure(settings, repeat: int) -> dict:
    import training

    runs = []
    for _ in range(repeat):
        r = training.forecast_batch(settings)
        runs.append({"seconds": r.seconds, "rows": r.rows, "accuracy_rows": r.accuracy_rows})
    if not runs[-1]["rows"]:
        raise SystemExit("forecast-batch wrote no rows: no champion models (run `ridecast train`)")
    secs = [r["seconds"] for r in runs]
    return {"runs": runs, "median_s": statistics.median(secs), "min_s": min(secs), "rows": runs[-1]["rows"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in-place", action="store_true")
    ap.add_argument("--days", type=int, default=29)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if a.in_place:
        from ridecast.config import get_settings

        res = _measure(get_settings(), a.repeat)
    else:
        with bench_settings("forecast-batch") as s:
            import training
            from ridecast.sources.simulate import simulate_events
            from tests.lake_fixtures import write_lake

            end = (datetime.now(timezone.utc) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
            t0 = time.perf_counter()
            write_lake(s, list(simulate_events(end - timedelta(days=a.days), timedelta(days=a.days), seed=3)))
            setup = time.perf_counter() - t0
            s.training.backtest_days = 1  # one fold: only the champions matter here
            t0 = time.perf_counter()
            tr = training.train(s, backend="local")
            train_s = time.perf_counter() - t0
            if not all(d.promoted for d in tr.decisions.values()):
                raise SystemExit(f"no champion for every horizon: {[d.reason for d in tr.decisions.values()]}")
            res = {**_measure(s, a.repeat), "setup_s": setup, "train_s": train_s}
    print_table("forecast-batch: all zones x horizons", [
        ("forecasts per run", str(res["rows"]), ""),
        ("median / min time", f"{res['median_s']:.1f} s / {res['min_s']:.1f} s", f"{a.repeat} runs"),
    ])
    write_result("forecast_batch_time", res)


if __name__ == "__main__":
    main()
