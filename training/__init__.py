"""Forecasting (issue #3): point-in-time training sets from Iceberg, baselines, distributed XGBoost on Ray,
rolling-origin backtest, MLflow registry with a promotion gate, batch forecasts and an HTML report.

The three entry points are what the CLI (``ridecast train | forecast-batch | report``) calls; heavy imports
(Ray, MLflow, XGBoost, matplotlib) happen inside them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import pandas as pd

    from ridecast.config import Settings
    from training.backtest import TrainingOutcome
    from training.forecast import ForecastResult
    from training.registry import GateDecision

__all__ = ["TrainResult", "forecast_batch", "train", "write_report"]


@dataclass
class TrainResult:
    run_id: str
    decisions: dict[int, "GateDecision"]
    metrics: dict[int, dict[str, dict[str, float]]]  # horizon -> model/baseline -> metric -> value
    timings: dict[str, float]
    outcome: "TrainingOutcome" = field(repr=False)

    def table(self) -> "pd.DataFrame":
        """WAPE/MAE/RMSE/MASE per horizon for the model and each baseline (long format)."""
        import pandas as pd

        return pd.DataFrame(
            [{"horizon_min": h, "model": m, **v} for h, ms in self.metrics.items() for m, v in ms.items()]
        )


def train(
    settings: "Settings | None" = None,
    horizons: list[int] | None = None,
    workers: int | None = None,
    *,
    backend: str = "ray",
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Build the training sets from the lake, backtest, train one model per horizon, register and gate."""
    from ridecast.config import get_settings
    from training.backtest import run_backtest_and_fit
    from training.dataset import load_lake
    from training.registry import register_run

    s = settings or get_settings()
    horizons = sorted(set(horizons or s.training.horizons))
    workers = workers or s.training.workers
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    say("reading silver and gold from Iceberg")
    lake = load_lake(s)
    read_s = time.perf_counter() - t0
    say(f"{len(lake.zones)} zones, {lake.start:%Y-%m-%d %H:%M} .. {lake.watermark:%Y-%m-%d %H:%M} UTC")
    outcome = run_backtest_and_fit(lake, s, horizons, workers=workers, backend=backend, progress=say)
    outcome.timings["read_s"] = read_s
    s.ml_dir.mkdir(parents=True, exist_ok=True)
    outcome.backtest_frame().to_parquet(s.ml_dir / "last_backtest.parquet", index=False)
    say("logging to MLflow and applying the promotion gate")
    run_id, decisions = register_run(
        s, outcome, extra_params={"workers": workers, "backend": backend, "zones": len(lake.zones)}
    )
    outcome.timings["total_s"] = time.perf_counter() - t0
    return TrainResult(run_id, decisions, {h: o.metrics for h, o in outcome.horizons.items()}, outcome.timings, outcome)


def forecast_batch(settings: "Settings | None" = None, at=None) -> "ForecastResult":
    """Write forecasts for every zone and horizon from the champions (see :mod:`training.forecast`)."""
    from ridecast.config import get_settings
    from training.forecast import forecast_batch as _fb

    return _fb(settings or get_settings(), at=at)


def write_report(settings: "Settings | None" = None, out: Path | str | None = None) -> Path:
    """Self-contained HTML report with PNGs (see :mod:`training.report`)."""
    from ridecast.config import get_settings
    from training.report import write_report as _wr

    return _wr(settings or get_settings(), Path(out) if out else None)
