"""Training time and peak memory: Ray Train's XGBoostTrainer vs plain single-process ``xgboost.train``.

    .venv/bin/python -m benchmarks.train_ray_vs_single               # ~1.05M rows x 41 features, 100 rounds
    .venv/bin/python -m benchmarks.train_ray_vs_single --rounds 50 --days 15   # quicker

Same data, same parameters, same cores, one run each:

1. the parent builds one training matrix with the real point-in-time builder (55 zones, 5-minute cut-offs,
   horizons 15/30/60 stacked with a ``horizon_min`` column -> >= 1M rows) from seeded synthetic demand, and
   saves it as ``.npy`` (building is reported but belongs to neither side);
2. child process ``single``: load the arrays, ``xgboost.train`` with ``nthread = cores`` (QuantileDMatrix +
   boosting, through the same loop ``training.trainer`` uses);
3. child process ``ray``: ``ray.init`` (timed: cluster start), ``ray.put`` of the arrays, one
   ``XGBoostTrainer.fit`` with ``workers`` ranks x ``cores / workers`` threads; the time inside the workers'
   loop is reported by the workers themselves, so the trainer's own overhead (controller, worker group,
   collective set-up, checkpoint) is ``fit - loop``.

Each side runs in its own process so peak RSS (process + children: raylet, GCS, workers) is its own.
Ratios printed: total (with cluster start and data loading), without cluster start, and compute only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import MemorySampler, bench_settings, print_table, write_result

N_ZONES = 55


def _build(days: int, out: Path) -> dict:
    import pandas as pd

    from ridecast.config import Settings
    from tests.lake_fixtures import gold_windows, synthetic_events
    from training.dataset import build_frame, cutoff_grid, feature_columns, lake_from_frames

    t0 = time.perf_counter()
    zones = [f"Z{i:02d}" for i in range(N_ZONES)]
    silver = synthetic_events(zones, "2025-03-03", days, seed=1)
    lake = lake_from_frames(silver, gold_windows(silver), zones=zones)
    s = Settings(home=out / "home")
    s.training.cutoff_minutes = 5
    frames = []
    for h in (15, 30, 60):
        f = build_frame(lake, cutoff_grid(lake, s, h), h, s)
        frames.append(f[f["y"].notna()])
    frame = pd.concat(frames, ignore_index=True)
    feats = [*feature_columns(lake.windows), "horizon_min"]
    np.save(out / "X.npy", frame[feats].to_numpy(np.float32))
    np.save(out / "y.npy", frame["y"].to_numpy(np.float32))
    (out / "features.json").write_text(json.dumps(feats))
    return {"rows": len(frame), "features": len(feats), "events": len(silver), "build_s": time.perf_counter() - t0}


def _child(mode: str, data: Path, workers: int, rounds: int, cpus: int) -> None:
    with bench_settings(f"train-{mode}") as s:
        s.training.ray_num_cpus = cpus
        from training.trainer import FitTask, fit_tasks, shutdown_ray

        with MemorySampler(s, interval_s=0.25) as mem:
            t0 = time.perf_counter()
            X, y = np.load(data / "X.npy"), np.load(data / "y.npy")
            feats = json.loads((data / "features.json").read_text())
            load_s = time.perf_counter() - t0
            mem.phase = "fit"
            out = fit_tasks(
                [FitTask("all/final", X, y, None, keep_model=True)], feats, s,
                workers=workers, backend="ray" if mode == "ray" else "local", num_boost_round=rounds,
            )
            total = time.perf_counter() - t0
            if mode == "ray":
                shutdown_ray()
        print("RESULT " + json.dumps({"mode": mode, "load_s": load_s, "total_s": total, **out.timings, **mem.report()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=29, help="days of synthetic history (29 -> ~1.05M rows)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--child", choices=["single", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.data, a.workers, a.rounds, a.cpus)
        return
    with tempfile.TemporaryDirectory(prefix="ridecast-bench-train-") as tmp:
        data = Path(tmp)
        built = _build(a.days, data)
        print(f"built {built['rows']:,} rows x {built['features']} features in {built['build_s']:.1f}s")
        res = {}
        for mode in ("single", "ray"):
            cmd = [sys.executable, "-m", "benchmarks.train_ray_vs_single", "--child", mode, "--data", str(data),
                   "--workers", str(a.workers), "--rounds", str(a.rounds), "--cpus", str(a.cpus)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                raise SystemExit(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            res[mode] = json.loads(line[-1][7:])
    one, ray = res["single"], res["ray"]
    ratios = {
        "total_with_start_and_loading": ray["total_s"] / one["total_s"],
        "without_cluster_start": (ray["total_s"] - ray["ray_start_s"]) / one["total_s"],
        "fit_only (put + trainer.fit vs xgb.train)": (ray["put_s"] + ray["fit_s"]) / one["fit_s"],
        "compute_only (workers' loop vs xgb.train)": ray["loop_s"] / one["fit_s"],
    }
    rows = [
        ("rows x features", f"{built['rows']:,} x {built['features']}", f"{a.rounds} rounds, {a.cpus} cores"),
        ("single: load + DMatrix + train", f"{one['total_s']:.1f} s", f"train {one['fit_s']:.1f} s"),
        ("ray: cluster start", f"{ray['ray_start_s']:.1f} s", "ray.init, local, 127.0.0.1"),
        ("ray: ray.put", f"{ray['put_s']:.1f} s", "object store"),
        ("ray: trainer.fit", f"{ray['fit_s']:.1f} s", f"workers' own loop {ray['loop_s']:.1f} s"),
        ("ray: trainer overhead", f"{ray['fit_s'] - ray['loop_s']:.1f} s", "controller, worker group, collective, checkpoint"),
        ("peak RSS single", f"{one['peak_rss_gib']:.2f} GiB", ""),
        ("peak RSS ray (driver+raylet+workers)", f"{ray['peak_rss_gib']:.2f} GiB", ""),
        *[(f"ratio ray/single {k}", f"{v:.2f}x", "goal <= 1.5x excluding cluster start" if "without" in k else "")
          for k, v in ratios.items()],
    ]
    print_table("XGBoost: Ray Train vs single process", rows)
    write_result("train_ray_vs_single", {"data": built, "rounds": a.rounds, "workers": a.workers, "cpus": a.cpus,
                                         "single": one, "ray": ray, "ratios": ratios})


if __name__ == "__main__":
    main()
