"""Distributed XGBoost on Ray Train (V2 ``XGBoostTrainer``), and the same loop single-process for comparison.

Why one Ray Train run for a whole ``ridecast train``: a training run is many small fits (every backtest fold of
every horizon, then one final model per horizon). Starting a worker group and the XGBoost collective costs
seconds each time; one ``XGBoostTrainer.fit`` whose loop trains all of them sequentially pays it once. Inside the
loop every ``xgboost.train`` is collective (Ray wraps the loop in xgboost's ``CommunicatorContext``), so each
model is one data-parallel model over all workers' shards.

Why data goes through the object store and not Ray Data: the training matrices are built by pandas/numpy on the
driver (the point-in-time builder); ``ray.put`` once, each worker takes rows ``rank::world``. That is
deterministic (Ray Data's streaming split is not guaranteed to give a worker the same rows each run), and it
skips Ray Data's per-block execution overhead, which dominated loading time on 2 cores.

Fixed cost: every ``fit`` starts fresh Python processes (controller, synchronisation actor, one per rank), each
importing Ray Train and most of them xgboost; that, not the boosting, is Ray's overhead on small machines.
So the cluster start does the once-per-cluster parts (``ensure_ray``), ``_lean_trainer_cls`` skips the
actors a run without Ray Data on our own cluster never uses, the preemption watcher is off, and the loop
reports once (``benchmarks/train_ray_vs_single.py`` has the measured breakdown).

Determinism: for a fixed seed, worker count, and input, the shards, the quantile sketch, and row subsampling are
all fixed, so two runs give bit-identical models (``tests/test_train_e2e.py`` checks predictions are equal).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.ray_runtime import init_ray, ray_env, shutdown_ray

if TYPE_CHECKING:
    import xgboost as xgb

    from ridecast.config import Settings

__all__ = ["FitOutput", "FitTask", "default_params", "ensure_ray", "fit_tasks", "shutdown_ray"]


@dataclass
class FitTask:
    """One model: train on (X, y); predict ``X_pred`` (if given); keep the booster if ``keep_model``."""

    key: str
    X: np.ndarray
    y: np.ndarray
    X_pred: np.ndarray | None = None
    keep_model: bool = False


@dataclass
class FitOutput:
    models: dict[str, "xgb.Booster"] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    fit_started_at: float = float("nan")  # epoch seconds when ``trainer.fit()`` was called (Ray backend)


def default_params(settings: "Settings") -> dict[str, Any]:
    """Poisson objective: labels are counts, often small and zero; predictions stay positive.

    Conservative depth and learning rate: ~100k rows per horizon, and the strongest signal is already encoded
    in seasonal features, so the trees mostly learn corrections.
    """
    params: dict[str, Any] = {
        "objective": "count:poisson",
        "tree_method": "hist",
        "eta": 0.08,
        "max_depth": 6,
        "min_child_weight": 5,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "max_bin": 64,
        "seed": settings.training.seed,
        "eval_metric": "mae",
    }
    params.update(settings.training.xgb_params)
    return params


def _ray_env() -> None:
    ray_env()
    # Ray Train V2 knobs (read by the driver, propagated to the controller and workers):
    # - no PreemptionWatcher actor: it polls for node drains (spot/preemptible clusters); here it was one more
    #   fresh Python process importing ray.train (~4.5 CPU-s) started while the workers were already training;
    # - the controller polls the workers every 0.5 s instead of 2 s: it notices the end of the loop (and
    #   collects reports) up to 1.5 s sooner; a poll is a few tiny actor calls.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")


def ensure_ray(settings: "Settings", detail: dict[str, float] | None = None) -> float:
    """Connect to ``training.ray_address`` or start a frugal local Ray bound to 127.0.0.1; returns seconds spent.

    Cluster start also does the once-per-cluster Ray Train set-up (``detail`` gets the parts, in seconds):
    ``ray_init_s`` (GCS, raylet, agents), ``ray_train_import_s`` (``ray.train.xgboost`` in the driver: Ray
    Train, Ray Data, pandas; xgboost itself is imported before, by the caller, as on the single-process path)
    and ``ray_train_coordinator_s`` (the cluster's autoscaling-coordinator actor that every Ray Train V2
    controller registers its resource request with: detached, one per cluster; when the first ``fit`` has to
    create it, the controller waits for it with a 5 s timeout, which on 2 cores it always hit).
    """
    _ray_env()
    import ray

    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    init_ray(settings)
    t1 = time.perf_counter()
    import ray.train.xgboost  # noqa: F401

    t2 = time.perf_counter()
    from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import (
        get_or_create_autoscaling_coordinator,
    )

    # Created from the driver (no runtime_env), so it can take one of the idle workers the raylet prestarts.
    ray.get(get_or_create_autoscaling_coordinator().__ray_ready__.remote())
    t3 = time.perf_counter()
    if detail is not None:
        detail.update(ray_init_s=t1 - t0, ray_train_import_s=t2 - t1, ray_train_coordinator_s=t3 - t2)
    return t3 - t0


def _run_tasks(config: dict[str, Any], rank: int, world: int, get) -> dict[str, Any]:
    """The per-worker loop, shared by the Ray and single-process paths (so they train the same models)."""
    import xgboost as xgb

    out: dict[str, Any] = {"models": {}, "predictions": {}, "loop_start_ts": time.time()}
    t0 = time.perf_counter()
    for key, ref, keep in config["tasks"]:
        X, y, X_pred = get(ref)
        dtrain = xgb.QuantileDMatrix(
            X[rank::world], y[rank::world], feature_names=config["features"],
            max_bin=config["params"].get("max_bin", 256),
        )
        bst = xgb.train(config["params"], dtrain, num_boost_round=config["rounds"], verbose_eval=False)
        if rank == 0:
            if X_pred is not None:
                out["predictions"][key] = bst.inplace_predict(X_pred)
            if keep:
                out["models"][key] = bst
    out["loop_s"] = time.perf_counter() - t0  # data to DMatrix + boosting, as the worker sees it
    out["loop_end_ts"] = time.time()
    return out


def _ray_train_loop(config: dict[str, Any]) -> None:
    """One report per worker, at the end (rank 0 attaches the checkpoint with every kept model).

    Every ``ray.train.report`` is a barrier across workers and a put into a one-slot queue that the controller
    drains when it polls; so no per-round reports (they made a 200-round model several times slower on 2
    cores) and no per-model ones either, and no per-round evaluation of a training metric (each round's
    ``evals`` is an extra prediction pass plus an allreduce; nothing read the value).
    """
    import ray
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    out = _run_tasks(config, rank, world, ray.get)
    metrics = {k: out[k] for k in ("loop_s", "loop_start_ts", "loop_end_ts")} | {"tasks": len(config["tasks"])}
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            for key, bst in out["models"].items():
                bst.save_model(str(Path(tmp) / f"{key.replace('/', '__')}.ubj"))
            np.savez(Path(tmp) / "predictions.npz", **{k.replace("/", "__"): v for k, v in out["predictions"].items()})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def _lean_trainer_cls(own_cluster: bool):
    """``XGBoostTrainer`` without the two controller callbacks that only start actors this run never uses.

    Ray Train V2 installs them on every run: ``DatasetsCallback`` starts a ``DatasetManager`` actor even when
    no ``datasets`` are given (we pass none: data goes through the object store), and
    ``PlacementGroupCleanerCallback`` starts a detached actor that frees the workers' placement group if the
    controller process dies without cleaning up. Each is a fresh Python process importing ray.train (pandas,
    Ray Data; ~5 CPU-s), started while the worker group starts. The cleaner is dropped only on the local
    cluster this process started (it dies with us, placement groups included); on a shared cluster
    (``training.ray_address``) it stays. Everything else (controller, worker group, XGBoost backend and
    collective, report/checkpoint) is stock Ray Train.
    """
    from ray.train.xgboost import XGBoostTrainer

    drop = {"DatasetsCallback"} | ({"PlacementGroupCleanerCallback"} if own_cluster else set())

    class LeanXGBoostTrainer(XGBoostTrainer):
        def _create_default_callbacks(self):
            callbacks = super()._create_default_callbacks()
            if self.datasets:
                return callbacks
            return [c for c in callbacks if type(c).__name__ not in drop]

    return LeanXGBoostTrainer


def fit_tasks(
    tasks: list[FitTask],
    features: list[str],
    settings: "Settings",
    *,
    workers: int | None = None,
    backend: str = "ray",
    params: dict[str, Any] | None = None,
    num_boost_round: int | None = None,
) -> FitOutput:
    """Train every task; ``backend="ray"`` (XGBoostTrainer, ``workers`` ranks) or ``"local"`` (plain xgb.train)."""
    import xgboost as xgb

    params = dict(params or default_params(settings))
    rounds = num_boost_round or settings.training.num_boost_round
    workers = workers or settings.training.workers
    timings: dict[str, float] = {}
    if backend == "local":
        params["nthread"] = settings.training.ray_num_cpus
        t0 = time.perf_counter()
        data = {t.key: (t.X, t.y, t.X_pred) for t in tasks}
        cfg = {"tasks": [(t.key, t.key, t.keep_model) for t in tasks], "features": features, "params": params,
               "rounds": rounds}
        out = _run_tasks(cfg, 0, 1, data.__getitem__)
        timings["fit_s"] = time.perf_counter() - t0
        timings["loop_s"] = out["loop_s"]
        return FitOutput(out["models"], out["predictions"], timings)
    if backend != "ray":
        raise ValueError(f"unknown backend {backend!r}: ray | local")

    start: dict[str, float] = {}
    timings["ray_start_s"] = ensure_ray(settings, start)
    timings.update(start)
    import ray
    from ray.train import RunConfig, ScalingConfig

    cpus = max(1, settings.training.ray_num_cpus // workers)
    params["nthread"] = cpus
    t0 = time.perf_counter()
    f32 = lambda a: None if a is None else np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    refs = [(t.key, ray.put((f32(t.X), f32(t.y), f32(t.X_pred))), t.keep_model) for t in tasks]
    timings["put_s"] = time.perf_counter() - t0
    storage = settings.ml_dir / "ray_results"
    storage.mkdir(parents=True, exist_ok=True)
    trainer = _lean_trainer_cls(own_cluster=not settings.training.ray_address)(
        _ray_train_loop,
        train_loop_config={"tasks": refs, "features": features, "params": params, "rounds": rounds},
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(storage_path=str(storage), name=f"train-{uuid.uuid4().hex[:8]}"),
    )
    t0, fit_ts = time.perf_counter(), time.time()
    result = trainer.fit()
    timings["fit_s"] = time.perf_counter() - t0
    if result.error:
        raise RuntimeError(f"Ray training failed: {result.error}")
    m = result.metrics
    timings["loop_s"] = float(m.get("loop_s", float("nan")))
    # Rank 0's wall clock (same host as the driver on a local cluster): fit() -> first line of the loop
    # (controller, worker group, backend/collective set-up) and loop end -> fit() returns (report,
    # checkpoint, controller noticing the end, worker group shut down).
    timings["fit_to_loop_s"] = float(m.get("loop_start_ts", float("nan"))) - fit_ts
    timings["loop_to_return_s"] = fit_ts + timings["fit_s"] - float(m.get("loop_end_ts", float("nan")))
    models: dict[str, xgb.Booster] = {}
    predictions: dict[str, np.ndarray] = {}
    with result.checkpoint.as_directory() as d:
        for p in Path(d).glob("*.ubj"):
            bst = xgb.Booster()
            bst.load_model(str(p))
            models[p.stem.replace("__", "/")] = bst
        with np.load(Path(d) / "predictions.npz") as npz:
            predictions = {k.replace("__", "/"): npz[k] for k in npz.files}
    return FitOutput(models, predictions, timings, fit_ts)
