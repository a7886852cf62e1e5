"""Training time and peak memory: Ray Train's XGBoostTrainer vs plain single-process ``xgboost.train``.

    .venv/bin/python -m benchmarks.train_ray_vs_single --repeat 3    # ~1.05M rows x 41 features, 100 rounds
    .venv/bin/python -m benchmarks.train_ray_vs_single --rounds 50 --days 15   # quicker

Same data, same parameters, same cores:

1. the parent builds one training matrix with the real point-in-time builder (55 zones, 5-minute cut-offs,
   horizons 15/30/60 stacked with a ``horizon_min`` column -> >= 1M rows) from seeded synthetic demand, and
   saves it as ``.npy`` (building is reported but belongs to neither side);
2. child process ``single``: load the arrays, ``xgboost.train`` with ``nthread = cores`` (QuantileDMatrix +
   boosting, through the same loop ``training.trainer`` uses);
3. child process ``ray``: cluster start (timed: ``ray.init``, ``import ray.train.xgboost`` in the driver, and
   the cluster's autoscaling-coordinator actor, see ``training.trainer.ensure_ray``), ``ray.put`` of the
   arrays, one ``XGBoostTrainer.fit`` with ``workers`` ranks x ``cores / workers`` threads. The workers time
   their own loop, so the trainer's overhead is ``fit - loop``, split into fit() -> first line of the loop
   (with the controller's own log: controller process up, worker actors created, train context initialised)
   and loop end -> fit() returns.

Each side runs in its own process, so peak RSS (process + children: raylet, GCS, workers) and CPU-seconds
(user + system of every process, by process name) are its own. ``--repeat N`` runs N interleaved single/ray
pairs and shows the pair with the median ratio (all pairs are in the JSON): on 2 shared cores one burst of
someone else's load can double ``xgboost.train``'s time (two OpenMP threads wait on each other).
Ratios printed: total (with cluster start and data loading), without cluster start (the goal: <= 1.5x),
without cluster start and loading, fit only, compute only, and CPU-seconds.

Where Ray Train's fixed cost went (2 cores, quiet machine, 2026-11-22; ``results/train_ray_vs_single.json``):
Ray Train V2 starts every ``fit`` from fresh Python processes: a TrainController, a SynchronizationActor, one
RayTrainWorker per rank, and, before this was trimmed, a DatasetManager (even with no datasets), a detached
PlacementGroupCleaner, a PreemptionWatcher, and on a new cluster the _AutoscalingCoordinatorActor (whose
creation the controller waited on with a 5 s timeout, and hit it). Each process imports ray.train (pandas,
Ray Data) and three of them import xgboost (which imports scikit-learn). With no bytecode cache in the venv
(uv does not compile it, and PYTHONDONTWRITEBYTECODE is set on these VMs) every process also compiled each
module it imported: 7.6 CPU-s for ``import ray.train.xgboost``, 2.9 with ``.pyc``. Measured, fit - loop:
36 s before (quiet; 45-56 s under load), 28-30 s (under load) after trimming the actors, 15-17 s with
``.pyc`` but the old trainer, **7.0-7.8 s** with both. The rest is what every fit still needs: the
controller's process (up 2.5-2.8 s after ``fit()``), two workers and the synchronisation actor (2.3-2.5 s),
xgboost imported in the workers with the train context (1.1-1.3 s), then 0.7-1.0 s from the loop's end to
``fit()`` returning (report + checkpoint, one 0.5 s controller poll, worker-group shutdown).

Cut: the DatasetManager and PlacementGroupCleaner actors (``training.trainer._lean_trainer_cls``), the
PreemptionWatcher (``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=0``), the 5 s coordinator wait (coordinator created
at cluster start, counted there), the per-model reports and the per-round training metric (an extra
prediction pass and allreduce every round: the old loop took 16-18 s vs 12-14 s now), the 2 s controller
poll (now 0.5 s); and ``.pyc`` for the venv (``scripts/bootstrap.sh`` syncs with ``--compile-bytecode``).
Not cut: a warm pool of worker processes. Ray never gives an actor a worker process that has run a task
(measured: warm-up tasks' processes stayed idle, every actor got a new process), and Train V2 starts its
controller and workers with a ``runtime_env`` (env vars it propagates), so they cannot take the idle
workers the raylet prestarts either; Ray has no public way to prestart processes for a runtime env.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from benchmarks.common import CpuSampler, MemorySampler, bench_settings, print_table, write_result

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


def _ray_train_phases(session_dir: Path, fit_start: float) -> dict[str, float]:
    """Seconds from ``fit()`` to the controller's first log line, and the worker-group start-up steps the
    Ray Train V2 controller logs itself (its structured log under the Ray session dir)."""
    out: dict[str, float] = {}
    for path in sorted((session_dir / "logs" / "train").glob("ray-train-sys-controller-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ts = datetime.strptime(rec["asctime"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.setdefault("fit_to_controller_up_s", ts - fit_start)
            msg = rec.get("message", "")
            for key, marker in (("worker_actors_created_s", "worker actors created in "),
                                ("train_context_init_s", "Train context initialized on workers in "),
                                ("worker_group_startup_s", "Worker group startup completed in ")):
                if marker in msg:
                    out[key] = float(msg.split(marker)[1].split("s")[0])
    return out


def _child(mode: str, data: Path, workers: int, rounds: int, cpus: int) -> None:
    with bench_settings(f"train-{mode}") as s:
        s.training.ray_num_cpus = cpus
        from training.trainer import FitTask, fit_tasks, shutdown_ray

        with MemorySampler(s, interval_s=0.25) as mem, CpuSampler() as cpu:
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
            phases = {}
            if mode == "ray":
                import ray

                session = Path(ray._private.worker.global_worker.node.get_session_dir_path())
                phases = _ray_train_phases(session, getattr(out, "fit_started_at", float("nan")))
                shutdown_ray()
        print("RESULT " + json.dumps({"mode": mode, "load_s": load_s, "total_s": total, **out.timings,
                                      "ray_train_phases": phases, **cpu.report(), **mem.report()}))


def _ratios(one: dict, ray: dict) -> dict[str, float]:
    cluster = ray["ray_start_s"]
    return {
        "total_with_start_and_loading": ray["total_s"] / one["total_s"],
        "without_cluster_start": (ray["total_s"] - cluster) / one["total_s"],
        "without_cluster_start_and_loading": (ray["total_s"] - cluster - ray["load_s"] - ray["put_s"])
        / (one["total_s"] - one["load_s"]),
        "fit_only (put + trainer.fit vs xgb.train)": (ray["put_s"] + ray["fit_s"]) / one["fit_s"],
        "compute_only (workers' loop vs xgb.train)": ray["loop_s"] / one["fit_s"],
        "cpu_seconds (all processes)": ray["cpu_s"] / one["cpu_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=29, help="days of synthetic history (29 -> ~1.05M rows)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="single/ray pairs, interleaved; the median pair is shown")
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
        runs = []
        for i in range(a.repeat):
            res = {}
            for mode in ("single", "ray"):  # interleaved, so a burst of load on the machine hits one pair
                cmd = [sys.executable, "-m", "benchmarks.train_ray_vs_single", "--child", mode, "--data", str(data),
                       "--workers", str(a.workers), "--rounds", str(a.rounds), "--cpus", str(a.cpus)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode != 0 or not line:
                    raise SystemExit(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
                res[mode] = json.loads(line[-1][7:])
            res["ratios"] = _ratios(res["single"], res["ray"])
            res["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
            runs.append(res)
            print(f"run {i + 1}/{a.repeat}: single {res['single']['total_s']:.1f} s, ray {res['ray']['total_s']:.1f} s "
                  f"(cluster start {res['ray']['ray_start_s']:.1f} s), ratio without cluster start "
                  f"{res['ratios']['without_cluster_start']:.2f}x")
    # The table shows the run with the median ratio (a real run, so its figures add up); every run is in the JSON.
    key = "without_cluster_start"
    med = sorted(runs, key=lambda r: r["ratios"][key])[(len(runs) - 1) // 2]
    one, ray, ratios = med["single"], med["ray"], med["ratios"]
    ray_cluster = ray["ray_start_s"]
    ph = ray.get("ray_train_phases", {})
    top_cpu = ", ".join(f"{k.removeprefix('ray::')} {v:.1f}" for k, v in list(ray["cpu_by_process_s"].items())[:7])
    rows = [
        ("rows x features", f"{built['rows']:,} x {built['features']}", f"{a.rounds} rounds, {a.cpus} cores"),
        ("single: load + DMatrix + train", f"{one['total_s']:.1f} s",
         f"train {one['fit_s']:.1f} s, load {one['load_s']:.1f} s"),
        ("ray: cluster start", f"{ray_cluster:.1f} s",
         f"ray.init {ray.get('ray_init_s', 0):.1f} + import ray.train {ray.get('ray_train_import_s', 0):.1f}"
         f" + coordinator actor {ray.get('ray_train_coordinator_s', 0):.1f}"),
        ("ray: load + ray.put", f"{ray['load_s'] + ray['put_s']:.1f} s", "np.load + object store"),
        ("ray: trainer.fit", f"{ray['fit_s']:.1f} s", f"workers' own loop {ray['loop_s']:.1f} s"),
        ("  fit() -> first line of the loop", f"{ray.get('fit_to_loop_s', float('nan')):.1f} s",
         f"controller up {ph.get('fit_to_controller_up_s', float('nan')):.1f}, worker actors "
         f"{ph.get('worker_actors_created_s', float('nan')):.1f}, "
         f"train context {ph.get('train_context_init_s', float('nan')):.1f}"),
        ("  loop end -> fit() returns", f"{ray.get('loop_to_return_s', float('nan')):.1f} s",
         "report + checkpoint, controller poll, worker group shutdown"),
        ("ray: trainer overhead (fit - loop)", f"{ray['fit_s'] - ray['loop_s']:.1f} s", ""),
        ("CPU-seconds single / ray", f"{one['cpu_s']:.0f} / {ray['cpu_s']:.0f}", top_cpu),
        ("peak RSS single", f"{one['peak_rss_gib']:.2f} GiB", ""),
        ("peak RSS ray (driver+raylet+workers)", f"{ray['peak_rss_gib']:.2f} GiB", ""),
        *[(f"ratio ray/single {k}", f"{v:.2f}x", "goal <= 1.5x" if k == key else "")
          for k, v in ratios.items()],
    ]
    if len(runs) > 1:
        rows.append((f"ratio {key}, all {len(runs)} runs", ", ".join(f"{r['ratios'][key]:.2f}x" for r in runs),
                     "single total " + ", ".join(f"{r['single']['total_s']:.1f}" for r in runs) + " s"))
    title = "XGBoost: Ray Train vs single process" + (f" (median of {len(runs)} runs)" if len(runs) > 1 else "")
    print_table(title, rows)
    write_result("train_ray_vs_single", {"data": built, "rounds": a.rounds, "workers": a.workers, "cpus": a.cpus,
                                         "repeat": a.repeat, "single": one, "ray": ray, "ratios": ratios,
                                         "runs": runs if len(runs) > 1 else None})


if __name__ == "__main__":
    main()
