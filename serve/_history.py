"""A zone's recent past for a chart: actual requests (gold.zone_features), past forecasts (gold.forecasts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["ZoneHistory", "zone_history"]


@dataclass(frozen=True)
class ZoneHistory:
    zone: str
    since: pd.Timestamp
    until: pd.Timestamp
    actuals: pd.DataFrame  # window_end, window_minutes, requests (the smallest window, one row per slide)
    forecasts: pd.DataFrame  # feature_time, horizon_min, target_start, target_end, predicted_requests, model_version


def zone_history(settings: "Settings", zone: str, hours: int, now=None) -> ZoneHistory:
    raise NotImplementedError
