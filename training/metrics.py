"""Forecast error metrics and their breakdowns (overall, per horizon, per zone, by hour of day).

* WAPE = sum|e| / sum|y|: scale-free across zones of very different volume, and defined when many windows are 0
  (MAPE is not).
* MASE here is *relative to seasonal naive on the same rows*: MAE(model) / MAE(same slot last week). The textbook
  MASE scales by the in-sample naive MAE; on a rolling-origin backtest the out-of-sample ratio is what an operator
  reads ("how much better than last week's number"), and it is 1.0 for seasonal naive by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["breakdown", "mae", "mase", "rmse", "score", "wape"]


def _clean(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    ok = ~(np.isnan(y) | np.isnan(p))
    return y[ok], p[ok]


def mae(y, p) -> float:
    y, p = _clean(y, p)
    return float(np.mean(np.abs(y - p))) if len(y) else float("nan")


def rmse(y, p) -> float:
    y, p = _clean(y, p)
    return float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else float("nan")


def wape(y, p) -> float:
    y, p = _clean(y, p)
    denom = np.abs(y).sum()
    return float(np.abs(y - p).sum() / denom) if denom > 0 else float("nan")


def mase(y, p, naive) -> float:
    """MAE of ``p`` over MAE of the seasonal-naive forecast ``naive`` on the same rows."""
    y, p, naive = (np.asarray(a, dtype=float) for a in (y, p, naive))
    ok = ~(np.isnan(y) | np.isnan(p) | np.isnan(naive))
    d = mae(y[ok], naive[ok])
    return float(mae(y[ok], p[ok]) / d) if d and d > 0 else float("nan")


def score(y, p, naive) -> dict[str, float]:
    return {"mae": mae(y, p), "rmse": rmse(y, p), "wape": wape(y, p), "mase": mase(y, p, naive), "n": float(len(y))}


def breakdown(bt: pd.DataFrame, pred_cols: list[str], by: list[str] | None,
              naive_col: str = "seasonal_naive") -> pd.DataFrame:
    """Metrics of each prediction column, grouped by ``by`` (``None`` = overall); long format.

    ``bt`` needs ``y``, the prediction columns and ``naive_col``. Returns columns ``by + [model, mae, rmse, wape,
    mase, n]``.
    """
    rows = []
    groups = [((), bt)] if not by else bt.groupby(by, sort=True)
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        for col in pred_cols:
            m = score(g["y"].to_numpy(), g[col].to_numpy(), g[naive_col].to_numpy())
            rows.append({**dict(zip(by or [], key)), "model": col, **m})
    return pd.DataFrame(rows)
