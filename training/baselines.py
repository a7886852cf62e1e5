"""The forecasts an operations team already has; a model is only worth serving if it beats the best of them.

All three are computed from the same point-in-time features as the model, on the same backtest rows:

* ``seasonal_naive`` — demand in the same window one week earlier (``lag_7d``);
* ``persistence`` — demand in the last ``h`` minutes before the cut-off (``recent_h``);
* ``hour_of_week_mean`` — mean label per (zone, local hour of week) over the *training* rows of the fold only,
  falling back to the zone mean, then the global mean, for slots the training rows never saw.

Prophet is left out: one fit per zone and fold (55 x 7 x 3) costs minutes for a baseline that, on 15-minute
counts, rarely beats the hour-of-week mean; it is not in the locked environment either.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["BASELINES", "baseline_predictions", "hour_of_week_mean"]

BASELINES = ("seasonal_naive", "persistence", "hour_of_week_mean")


def hour_of_week_mean(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Mean training label per (zone, whole local hour of week), with zone and global fallbacks."""
    how_train = np.floor(train["hour_of_week"]).astype(int)
    how_test = np.floor(test["hour_of_week"]).astype(int)
    slot = train.assign(_how=how_train).groupby(["zone", "_how"])["y"].mean()
    zone_mean = train.groupby("zone")["y"].mean()
    glob = float(train["y"].mean()) if len(train) else np.nan
    key = pd.MultiIndex.from_arrays([test["zone"], how_test])
    pred = slot.reindex(key).to_numpy()
    fallback = test["zone"].map(zone_mean).to_numpy(dtype=float)
    pred = np.where(np.isnan(pred), fallback, pred)
    return np.where(np.isnan(pred), glob, pred)


def baseline_predictions(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Every baseline's prediction for the ``test`` rows (columns named as in :data:`BASELINES`)."""
    return pd.DataFrame(
        {
            "seasonal_naive": test["lag_7d"].to_numpy(dtype=float),
            "persistence": test["recent_h"].to_numpy(dtype=float),
            "hour_of_week_mean": hour_of_week_mean(train, test),
        },
        index=test.index,
    )
