"""A zone's recent past for a chart: actual requests (gold.zone_features), past forecasts (gold.forecasts).

The span is the ``hours`` before the zone's newest window (not before the wall clock), so a replayed historical
dataset still shows a history. Actuals are the smallest gold window (``min(flink.window_minutes)``) at every slide
between the first and the newest row read: a slide without a row is a closed window without requests (gold writes
no row for an empty window), so it reads 0. Forecasts are the ``gold.forecasts`` rows made (``feature_time``)
within the span; a 15-minute forecast compares with the 15-minute actual whose window ends at its ``target_end``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from serve._errors import UnknownZoneError
from training.features import slide_of
from training.lake_io import read_table

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["ZoneHistory", "zone_history"]

_ACTUALS = ("window_end", "window_minutes", "requests")
_FORECASTS = ("feature_time", "horizon_min", "target_start", "target_end", "predicted_requests", "model_version")


@dataclass(frozen=True)
class ZoneHistory:
    zone: str
    since: pd.Timestamp
    until: pd.Timestamp
    actuals: pd.DataFrame  # window_end, window_minutes, requests (the smallest window, one row per slide)
    forecasts: pd.DataFrame  # feature_time, horizon_min, target_start, target_end, predicted_requests, model_version


def _utc(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def zone_history(settings: "Settings", zone: str, hours: int, now=None) -> ZoneHistory:
    """Actuals and forecasts of ``zone`` over the ``hours`` before its newest window (ending at or before ``now``
    when given). Raises :class:`UnknownZoneError` for a zone with no window in the lake."""
    from pyiceberg.expressions import And, EqualTo, GreaterThan, LessThanOrEqual

    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    w = min(settings.flink.window_minutes)
    mine = And(EqualTo("zone", zone), EqualTo("window_minutes", w))
    if now is not None:
        mine = And(mine, LessThanOrEqual("window_end", _utc(now).isoformat()))
    ends = read_table(settings, "gold.zone_features", mine, ("window_end",))
    if ends.empty:
        raise UnknownZoneError([zone])
    until = _utc(ends["window_end"].max())
    since = until - pd.Timedelta(hours=hours)
    span = And(GreaterThan("window_end", since.isoformat()), LessThanOrEqual("window_end", until.isoformat()))
    rows = read_table(settings, "gold.zone_features", And(mine, span), _ACTUALS)
    rows["window_end"] = pd.to_datetime(rows["window_end"], utc=True)
    grid = pd.date_range(rows["window_end"].min(), until, freq=slide_of(settings), name="window_end")
    actuals = (
        rows.drop_duplicates("window_end")  # the sink is exactly-once; a replayed fixture must not double a bar
        .set_index("window_end")["requests"]
        .reindex(grid, fill_value=0)
        .astype("int64")
        .reset_index()
    )
    actuals.insert(1, "window_minutes", w)
    made = And(
        EqualTo("zone", zone),
        And(GreaterThan("feature_time", since.isoformat()), LessThanOrEqual("feature_time", until.isoformat())),
    )
    fc = read_table(settings, "gold.forecasts", made, _FORECASTS)
    for c in ("feature_time", "target_start", "target_end"):
        fc[c] = pd.to_datetime(fc[c], utc=True)
    fc = fc.sort_values(["feature_time", "horizon_min"], kind="stable").reset_index(drop=True)
    return ZoneHistory(zone, since, until, actuals, fc)
