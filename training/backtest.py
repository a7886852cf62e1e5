"""Rolling-origin backtest over the last K days, and the final models, planned as one batch of fits.

Fold ``i`` has origin ``o_i = start + i * fold_days``: its model trains on cut-offs whose label window ended by
the origin (``t + h <= o_i``: nothing it learns from is after the origin), and predicts the cut-offs in
``[o_i, o_i + fold_days)`` whose label is complete. The baselines are computed on exactly those rows (the
hour-of-week mean fitted on the fold's training rows only). The final model per horizon trains on every
label-complete cut-off; it is what gets registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from training.baselines import BASELINES, baseline_predictions
from training.dataset import LakeData, build_frame, cutoff_grid, feature_columns
from training.metrics import breakdown, score
from training.trainer import FitTask, fit_tasks

if TYPE_CHECKING:
    import xgboost as xgb

    from ridecast.config import Settings

__all__ = ["HorizonOutcome", "TrainingOutcome", "backtest_folds", "run_backtest_and_fit"]


@dataclass
class HorizonOutcome:
    horizon: int
    features: list[str]
    booster: "xgb.Booster"
    backtest: pd.DataFrame  # zone, cutoff, fold, hour_of_day, y, model, <baselines>
    train_rows: int
    trained_until: pd.Timestamp  # latest label instant the final model saw
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # model/baseline -> metrics
    backtest_X: pd.DataFrame | None = None  # features of the backtest rows (same order): scores the champion

    @property
    def best_baseline(self) -> tuple[str, float]:
        name = min(BASELINES, key=lambda b: self.metrics[b]["wape"])
        return name, self.metrics[name]["wape"]


@dataclass
class TrainingOutcome:
    horizons: dict[int, HorizonOutcome]
    backtest_start: pd.Timestamp
    backtest_end: pd.Timestamp
    timings: dict[str, float]
    params: dict

    def backtest_frame(self) -> pd.DataFrame:
        return pd.concat([o.backtest for o in self.horizons.values()], ignore_index=True)

    def breakdowns(self) -> dict[str, pd.DataFrame]:
        bt = self.backtest_frame()
        cols = ["model", *BASELINES]
        return {
            "overall": breakdown(bt, cols, None),
            "horizon": breakdown(bt, cols, ["horizon_min"]),
            "zone": breakdown(bt, cols, ["horizon_min", "zone"]),
            "hour": breakdown(bt, cols, ["horizon_min", "hour"]),
        }


def backtest_folds(lake: LakeData, settings: "Settings") -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[origin, end)`` of each fold: the last ``backtest_days`` before the watermark, ``fold_days`` each."""
    t = settings.training
    step = pd.Timedelta(minutes=t.cutoff_minutes)
    end = lake.watermark
    start = (end - pd.Timedelta(days=t.backtest_days)).ceil(step)
    folds, o = [], start
    while o < end:
        folds.append((o, min(o + pd.Timedelta(days=t.fold_days), end)))
        o = o + pd.Timedelta(days=t.fold_days)
    return folds


def run_backtest_and_fit(
    lake: LakeData,
    settings: "Settings",
    horizons: list[int],
    *,
    workers: int | None = None,
    backend: str = "ray",
    progress: Callable[[str], None] | None = None,
    features: Sequence[str] | None = None,
) -> TrainingOutcome:
    """Build every horizon's training set, plan fold + final fits, run them in one trainer call, score.

    ``features`` restricts the model to a subset of :func:`feature_columns` (ablation studies in the benchmarks);
    the baselines are unaffected. Default: every feature.
    """
    say = progress or (lambda _m: None)
    import time

    t0 = time.perf_counter()
    folds = backtest_folds(lake, settings)
    all_features = feature_columns(lake.windows)
    if features is None:
        features = all_features
    else:
        unknown = sorted(set(features) - set(all_features))
        if unknown:
            raise ValueError(f"unknown features: {unknown}")
        features = [c for c in all_features if c in set(features)]
    tasks: list[FitTask] = []
    plans: dict[int, dict] = {}
    for h in horizons:
        cut = cutoff_grid(lake, settings, h)
        frame = build_frame(lake, cut, h, settings)
        frame = frame[~np.isnan(frame["y"])].reset_index(drop=True)
        if frame.empty:
            raise RuntimeError(f"no label-complete cut-offs for horizon {h}: need > min_history_days of data")
        target_end = frame["cutoff"] + pd.Timedelta(minutes=h)
        X = frame[features].to_numpy(np.float32)
        y = frame["y"].to_numpy(np.float32)
        fold_rows = []
        for i, (o, e) in enumerate(folds):
            tr = (target_end <= o).to_numpy()
            te = ((frame["cutoff"] >= o) & (frame["cutoff"] < e)).to_numpy()
            if tr.sum() == 0 or te.sum() == 0:
                continue
            tasks.append(FitTask(f"h{h}/fold{i}", X[tr], y[tr], X[te]))
            fold_rows.append((i, tr, te))
        if not fold_rows:
            raise RuntimeError(f"horizon {h}: no backtest fold has both training and test rows; need more days")
        tasks.append(FitTask(f"h{h}/final", X, y, None, keep_model=True))
        plans[h] = {"frame": frame, "folds": fold_rows, "until": target_end.max()}
    t_build = time.perf_counter() - t0
    say(f"training sets built ({sum(len(p['frame']) for p in plans.values()):,} rows); fitting {len(tasks)} models")
    fit = fit_tasks(tasks, features, settings, workers=workers, backend=backend)
    out: dict[int, HorizonOutcome] = {}
    for h, plan in plans.items():
        frame = plan["frame"]
        parts, xparts = [], []
        for i, tr, te in plan["folds"]:
            test = frame[te]
            bl = baseline_predictions(frame[tr], test)
            part = pd.DataFrame(
                {
                    "horizon_min": h,
                    "zone": test["zone"].to_numpy(),
                    "cutoff": test["cutoff"].to_numpy(),
                    "fold": i,
                    "y": test["y"].to_numpy(),
                    "model": fit.predictions[f"h{h}/fold{i}"].astype(float),
                }
            )
            for b in BASELINES:
                part[b] = bl[b].to_numpy()
            parts.append(part)
            xparts.append(test[features])
        bt = pd.concat(parts, ignore_index=True)
        bt_x = pd.concat(xparts, ignore_index=True)
        bt["cutoff"] = pd.to_datetime(bt["cutoff"], utc=True)
        bt["hour"] = bt["cutoff"].dt.tz_convert(settings.training.timezone).dt.hour
        # rows the seasonal naive cannot score (first week) are excluded for every model alike
        keep = ~np.isnan(bt["seasonal_naive"].to_numpy())
        bt, bt_x = bt[keep].reset_index(drop=True), bt_x[keep].reset_index(drop=True)
        metrics = {
            m: score(bt["y"].to_numpy(), bt[m].to_numpy(), bt["seasonal_naive"].to_numpy())
            for m in ["model", *BASELINES]
        }
        out[h] = HorizonOutcome(h, features, fit.models[f"h{h}/final"], bt, len(frame), plan["until"], metrics, bt_x)
    timings = {"build_s": t_build, **fit.timings}
    from training.trainer import default_params

    params = {**default_params(settings), "num_boost_round": settings.training.num_boost_round}
    return TrainingOutcome(out, folds[0][0], folds[-1][1], timings, params)
