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
    # No token in the home dir, no usage reporting, and keep Ray's internal services on loopback.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def ensure_ray(settings: "Settings") -> float:
    """Connect to ``training.ray_address`` or start a frugal local Ray bound to 127.0.0.1; returns seconds spent."""
    _ray_env()
    import ray

    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    if settings.training.ray_address:
        ray.init(address=settings.training.ray_address, log_to_driver=False)
    else:
        # ray.init turns _node_ip_address="127.0.0.1" into the outward interface (and so do the XGBoost Rabit
        # tracker and the agents) unless "cluster mode" is off; a local run needs no cluster mode, and with it
        # off the node address is loopback. The env var reaches the raylet and workers; the constant was read
        # when ray was imported in this process.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            num_cpus=settings.training.ray_num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=1536 * 1024 * 1024,
            log_to_driver=False,
            configure_logging=False,
        )
    return time.perf_counter() - t0


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _run_tasks(config: dict[str, Any], rank: int, world: int, get, report_cb) -> dict[str, Any]:
    """The per-worker loop, shared by the Ray and single-process paths (so they train the same models)."""
    import xgboost as xgb

    out: dict[str, Any] = {"models": {}, "predictions": {}}
    t0 = time.perf_counter()
    for key, ref, keep in config["tasks"]:
        X, y, X_pred = get(ref)
        dtrain = xgb.QuantileDMatrix(
            X[rank::world], y[rank::world], feature_names=config["features"], max_bin=config["params"].get("max_bin", 256)
        )
        callbacks = report_cb(key) if report_cb else None
        evals = [(dtrain, "train")] if callbacks else ()
        bst = xgb.train(
            config["params"], dtrain, num_boost_round=config["rounds"], evals=evals, callbacks=callbacks,
            verbose_eval=False,
        )
        if rank == 0:
            if X_pred is not None:
                out["predictions"][key] = bst.inplace_predict(X_pred)
            if keep:
                out["models"][key] = bst
    out["loop_s"] = time.perf_counter() - t0  # data to DMatrix + boosting, as the worker sees it
    return out


def _ray_train_loop(config: dict[str, Any]) -> None:
    import ray
    import ray.train
    from ray.train.xgboost import RayTrainReportCallback

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()

    class ReportAtEnd(RayTrainReportCallback):
        """Ray Train's XGBoost callback, reporting once per model instead of once per boosting round.

        Every ``ray.train.report`` is a barrier across workers; per-round reports made a 200-round model several
        times slower on 2 cores. The final metric of each final model is what the run history needs.
        """

        def __init__(self, key: str):
            super().__init__(frequency=0, checkpoint_at_end=False)
            self._key = key

        def after_iteration(self, model, epoch, evals_log):
            self._evals_log = evals_log
            return False

        def after_training(self, model):
            report = self._get_report_dict(self._evals_log) if self._evals_log else {}
            self._report_metrics({f"{self._key}/{k}": v for k, v in report.items()})
            return model

    def report_cb(key: str):
        return [ReportAtEnd(key)] if key.endswith("/final") else None

    out = _run_tasks(config, rank, world, ray.get, report_cb)
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            for key, bst in out["models"].items():
                bst.save_model(str(Path(tmp) / f"{key.replace('/', '__')}.ubj"))
            np.savez(Path(tmp) / "predictions.npz", **{k.replace("/", "__"): v for k, v in out["predictions"].items()})
            metrics = {"tasks": len(config["tasks"]), "loop_s": out["loop_s"]}
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report({"tasks": len(config["tasks"]), "loop_s": out["loop_s"]})


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
        out = _run_tasks(cfg, 0, 1, data.__getitem__, None)
        timings["fit_s"] = time.perf_counter() - t0
        timings["loop_s"] = out["loop_s"]
        return FitOutput(out["models"], out["predictions"], timings)
    if backend != "ray":
        raise ValueError(f"unknown backend {backend!r}: ray | local")

    timings["ray_start_s"] = ensure_ray(settings)
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.xgboost import XGBoostTrainer

    cpus = max(1, settings.training.ray_num_cpus // workers)
    params["nthread"] = cpus
    t0 = time.perf_counter()
    f32 = lambda a: None if a is None else np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    refs = [(t.key, ray.put((f32(t.X), f32(t.y), f32(t.X_pred))), t.keep_model) for t in tasks]
    timings["put_s"] = time.perf_counter() - t0
    storage = settings.ml_dir / "ray_results"
    storage.mkdir(parents=True, exist_ok=True)
    trainer = XGBoostTrainer(
        _ray_train_loop,
        train_loop_config={"tasks": refs, "features": features, "params": params, "rounds": rounds},
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(storage_path=str(storage), name=f"train-{uuid.uuid4().hex[:8]}"),
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    timings["fit_s"] = time.perf_counter() - t0
    if result.error:
        raise RuntimeError(f"Ray training failed: {result.error}")
    timings["loop_s"] = float(result.metrics.get("loop_s", float("nan")))
    models: dict[str, xgb.Booster] = {}
    predictions: dict[str, np.ndarray] = {}
    with result.checkpoint.as_directory() as d:
        for p in Path(d).glob("*.ubj"):
            bst = xgb.Booster()
            bst.load_model(str(p))
            models[p.stem.replace("__", "/")] = bst
        with np.load(Path(d) / "predictions.npz") as npz:
            predictions = {k.replace("__", "/"): npz[k] for k in npz.files}
    return FitOutput(models, predictions, timings)
