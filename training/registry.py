"""MLflow tracking and registry, the promotion gate, and the promotion history in ``ops.model_promotions``.

One MLflow run per ``ridecast train`` in the experiment ``training.experiment_name``: parameters, every model's
and baseline's backtest metrics, the breakdown tables, backtest plots and the feature list as artifacts, and one
registered model per horizon (``<prefix>-h<minutes>``) logged with its signature.

**The gate** (per horizon): the new version gets the ``champion`` alias only if its backtest WAPE is below the
best baseline's *and* below the current champion's on the same rows; otherwise it gets ``challenger`` and the
reason is logged (MLflow tag + text artifact + ``ops.model_promotions.reason``). Every decision, promoted or
not, is a row in ``ops.model_promotions``: who, when, which version, which champion it replaced, metrics.

*Scoring the champion on the same backtest.* The champion is loaded as registered and predicts the backtest
rows from its own feature list. Rows before its ``trained_until`` tag were in its training data, so only rows
after it are compared (the candidate's fold predictions on the same rows are out-of-sample too). If no such row
exists (re-training on unchanged data), all rows are used and the reason says the champion was scored
in-sample: the gate is then conservative (the champion is favoured), which is the safe direction.
"""

from __future__ import annotations

import getpass
import json
import math
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.metrics import wape

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ridecast.config import Settings
    from training.backtest import HorizonOutcome, TrainingOutcome

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GateDecision",
    "configure_mlflow",
    "decide",
    "load_champion",
    "model_name",
    "register_run",
]

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class GateDecision:
    horizon: int
    model_name: str
    version: int
    promoted: bool
    reason: str
    wape: float
    champion_version: int | None
    champion_wape: float | None
    best_baseline: str
    best_baseline_wape: float

    @property
    def alias(self) -> str:
        return CHAMPION if self.promoted else CHALLENGER


def model_name(settings: "Settings", horizon: int) -> str:
    return f"{settings.training.model_name_prefix}-h{horizon}"


def configure_mlflow(settings: "Settings") -> str:
    """Point MLflow at the configured tracking URI; create the experiment with a local artifact root if new."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.training.experiment_name)
    if exp is None:
        exp_id = mlflow.create_experiment(
            settings.training.experiment_name, artifact_location=settings.mlflow_artifact_location
        )
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def decide(
    wape_new: float,
    best_baseline: str,
    best_baseline_wape: float,
    champion_wape: float | None,
    wape_new_on_champion_rows: float | None = None,
    note: str = "",
) -> tuple[bool, str]:
    """The gate as a pure function: (promote?, reason). Ties do not promote."""
    if not math.isfinite(wape_new):
        return False, "candidate WAPE is not finite"
    if not wape_new < best_baseline_wape:
        return False, f"WAPE {wape_new:.4f} does not beat the best baseline {best_baseline} ({best_baseline_wape:.4f})"
    if champion_wape is None:
        return True, (f"no champion yet; WAPE {wape_new:.4f} beats the best baseline {best_baseline} "
                      f"({best_baseline_wape:.4f})")
    cand = wape_new if wape_new_on_champion_rows is None else wape_new_on_champion_rows
    suffix = f" ({note})" if note else ""
    if not cand < champion_wape:
        return False, f"WAPE {cand:.4f} does not beat the champion's {champion_wape:.4f} on the same rows{suffix}"
    return True, (
        f"WAPE {cand:.4f} beats the champion's {champion_wape:.4f} on the same rows{suffix} "
        f"and the best baseline {best_baseline} ({best_baseline_wape:.4f})"
    )


def _champion_version(client: "MlflowClient", name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def load_champion(settings: "Settings", horizon: int):
    """(booster, version) of the horizon's champion, or None."""
    import mlflow
    import mlflow.xgboost
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    name = model_name(settings, horizon)
    mv = _champion_version(MlflowClient(), name)
    if mv is None:
        return None
    return mlflow.xgboost.load_model(f"models:/{name}@{CHAMPION}"), int(mv.version)


def _score_champion(settings: "Settings", outcome: "HorizonOutcome", client: "MlflowClient", name: str):
    """(version, champion WAPE, candidate WAPE on the same rows, note) or None when there is no champion."""
    mv = _champion_version(client, name)
    if mv is None:
        return None
    import mlflow.xgboost

    bst = mlflow.xgboost.load_model(f"models:/{name}@{CHAMPION}")
    feats = list(bst.feature_names or [])
    missing = [f for f in feats if f not in outcome.backtest_X.columns]
    if missing or not feats:
        return int(mv.version), None, None, f"champion needs features not built any more: {missing[:5]}"
    bt = outcome.backtest
    rows = np.ones(len(bt), dtype=bool)
    note = "champion scored out-of-sample"
    until = mv.tags.get("trained_until")
    if until:
        after = (bt["cutoff"] >= pd.Timestamp(until)).to_numpy()
        if after.any():
            rows = after
        else:
            note = "no backtest row after the champion's training data: champion scored in-sample (conservative)"
    X = outcome.backtest_X.loc[rows, feats].to_numpy(np.float32)
    pred = bst.inplace_predict(X)
    y = bt.loc[rows, "y"].to_numpy()
    return int(mv.version), wape(y, pred), wape(y, bt.loc[rows, "model"].to_numpy()), f"{note}, {int(rows.sum())} rows"


def _actor(settings: "Settings") -> str:
    if settings.training.actor:
        return settings.training.actor
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


def register_run(
    settings: "Settings",
    outcome: "TrainingOutcome",
    *,
    extra_params: dict | None = None,
    plots: bool = True,
) -> tuple[str, dict[int, GateDecision]]:
    """Log the run, register one version per horizon, apply the gate, record decisions. Returns (run_id, decisions)."""
    import mlflow
    import mlflow.xgboost
    import xgboost
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    configure_mlflow(settings)
    client = MlflowClient()
    decisions: dict[int, GateDecision] = {}
    now = datetime.now(timezone.utc)
    t = settings.training
    with mlflow.start_run(run_name=f"train-{now:%Y%m%dT%H%M%S}") as run:
        params = {
            "horizons": ",".join(map(str, outcome.horizons)),
            "workers": (extra_params or {}).get("workers", t.workers),
            "seed": t.seed,
            "cutoff_minutes": t.cutoff_minutes,
            "backtest_days": t.backtest_days,
            "fold_days": t.fold_days,
            "backtest_start": outcome.backtest_start.isoformat(),
            "backtest_end": outcome.backtest_end.isoformat(),
            **{f"xgb_{k}": v for k, v in outcome.params.items()},
            **(extra_params or {}),
        }
        mlflow.log_params(params)
        mlflow.log_metrics({f"time_{k}": float(v) for k, v in outcome.timings.items()})
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            any_h = next(iter(outcome.horizons.values()))
            (d / "features.json").write_text(json.dumps(any_h.features, indent=1))
            for key, table in outcome.breakdowns().items():
                table.to_csv(d / f"metrics_by_{key}.csv", index=False)
            outcome.backtest_frame().to_parquet(d / "backtest.parquet", index=False)
            mlflow.log_artifacts(str(d), artifact_path="backtest")
            if plots:
                from training.report import backtest_plots

                pdir = d / "plots"
                backtest_plots(outcome.backtest_frame(), pdir)
                mlflow.log_artifacts(str(pdir), artifact_path="plots")
        for h, ho in outcome.horizons.items():
            mlflow.log_metrics(
                {f"h{h}_{m}_{k}": float(v) for m, ms in ho.metrics.items() for k, v in ms.items() if math.isfinite(v)}
            )
            name = model_name(settings, h)
            sample = ho.backtest_X.head(50).astype("float32")
            signature = infer_signature(sample, ho.booster.inplace_predict(sample.to_numpy()))
            champ = _score_champion(settings, ho, client, name)
            # explicit requirements: MLflow's inference imports the model in a subprocess (tens of seconds)
            info = mlflow.xgboost.log_model(
                ho.booster,
                name=f"model_h{h}",
                registered_model_name=name,
                signature=signature,
                pip_requirements=[f"xgboost=={xgboost.__version__}", f"numpy=={np.__version__}"],
            )
            version = int(info.registered_model_version)
            bl_name, bl_wape = ho.best_baseline
            new_wape = ho.metrics["model"]["wape"]
            if champ is None:
                promote, reason = decide(new_wape, bl_name, bl_wape, None)
                champ_v, champ_w = None, None
            elif champ[1] is None:
                champ_v, champ_w = champ[0], None
                promote, reason = decide(new_wape, bl_name, bl_wape, None)
                reason = f"{champ[3]}; compared with baselines only: {reason}"
            else:
                champ_v, champ_w, cand_w, note = champ
                promote, reason = decide(new_wape, bl_name, bl_wape, champ_w, cand_w, note)
            for k, v in {
                "horizon_min": h,
                "trained_until": ho.trained_until.isoformat(),
                "backtest_wape": f"{new_wape:.6f}",
                "gate_decision": "promoted" if promote else "rejected",
                "gate_reason": reason[:5000],
            }.items():
                client.set_model_version_tag(name, str(version), k, str(v))
            client.set_registered_model_alias(name, CHAMPION if promote else CHALLENGER, str(version))
            mlflow.set_tag(f"gate_h{h}", f"{'promoted' if promote else 'rejected'}: {reason}"[:5000])
            mlflow.log_text(reason + "\n", f"gate/h{h}.txt")
            decisions[h] = GateDecision(h, name, version, promote, reason, new_wape, champ_v, champ_w, bl_name, bl_wape)
        _record(settings, decisions, outcome, run.info.run_id, now)
    return run.info.run_id, decisions


def _record(settings: "Settings", decisions: dict[int, GateDecision], outcome: "TrainingOutcome", run_id: str,
            now) -> None:
    from training.lake_io import append_frame

    rows = []
    for h, d in decisions.items():
        m = outcome.horizons[h].metrics["model"]
        rows.append(
            {
                "decided_at": now,
                "model_name": d.model_name,
                "horizon_min": h,
                "version": d.version,
                "previous_champion_version": d.champion_version,
                "decision": "promoted" if d.promoted else "rejected",
                "alias": d.alias,
                "reason": d.reason,
                "wape": d.wape,
                "champion_wape": d.champion_wape,
                "best_baseline": d.best_baseline,
                "best_baseline_wape": d.best_baseline_wape,
                "mae": m["mae"],
                "rmse": m["rmse"],
                "mase": m["mase"],
                "actor": _actor(settings),
                "run_id": run_id,
                "experiment": settings.training.experiment_name,
                "backtest_start": outcome.backtest_start,
                "backtest_end": outcome.backtest_end,
            }
        )
    df = pd.DataFrame(rows)
    for c in ("horizon_min", "version", "previous_champion_version"):
        df[c] = df[c].astype("Int32")
    append_frame(settings, "ops.model_promotions", df)
