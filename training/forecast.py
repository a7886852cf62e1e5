"""Batch forecasts from the champions into ``gold.forecasts``, and ``gold.forecast_accuracy`` once actuals arrive.

``forecast_batch`` takes the latest instant at which every window has closed (the max ``window_end`` in gold,
or ``at``), builds the same point-in-time features the models were trained on, and writes one row per zone and
horizon. Re-running for the same instant replaces its rows (one atomic overwrite), so a retried job does not
duplicate forecasts. ``update_accuracy`` joins every forecast whose target window has closed with the actual
requests from silver and appends the ones not yet evaluated.

Trino (or ``ridecast sql``) examples::

    -- which zones will be busiest in the next hour (latest batch)
    SELECT zone, predicted_requests, target_start, target_end, model_version
    FROM iceberg.gold.forecasts
    WHERE horizon_min = 60
      AND feature_time = (SELECT max(feature_time) FROM iceberg.gold.forecasts WHERE horizon_min = 60)
    ORDER BY predicted_requests DESC
    LIMIT 10;

    -- how accurate were we yesterday, by zone (WAPE per zone and horizon)
    SELECT zone, horizon_min,
           sum(abs_error) / nullif(sum(actual_requests), 0) AS wape,
           sum(actual_requests) AS actual, sum(predicted_requests) AS predicted
    FROM iceberg.gold.forecast_accuracy
    WHERE target_start >= date_trunc('day', current_timestamp) - INTERVAL '1' DAY
      AND target_start <  date_trunc('day', current_timestamp)
    GROUP BY zone, horizon_min
    ORDER BY wape DESC;
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.dataset import build_frame, load_lake
from training.features import slide_of
from training.lake_io import append_frame, read_table
from training.registry import load_champion, model_name

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["ForecastResult", "forecast_batch", "update_accuracy"]

# history the features reach back to: four weekly lags of up to a day-long horizon, plus slack
_LOOKBACK = pd.Timedelta(days=29, hours=2)


@dataclass
class ForecastResult:
    feature_time: pd.Timestamp
    rows: int
    versions: dict[int, int]
    skipped: dict[int, str] = field(default_factory=dict)  # horizon -> why (no champion)
    accuracy_rows: int = 0
    seconds: float = 0.0
    forecasts: pd.DataFrame | None = None


def _gold_watermark(settings: "Settings") -> pd.Timestamp:
    """Latest instant with complete data: max gold ``window_end``, capped at the last request (see dataset)."""
    import pyarrow.compute as pc
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual

    from iceberg_catalog.catalog import load_table, open_catalog

    cat = open_catalog(settings)
    # max window_end from file statistics would be cheaper; a column scan is exact and small enough here
    ends = load_table(cat, "gold.zone_features").scan(selected_fields=("window_end",)).to_arrow().column("window_end")
    if len(ends) == 0:
        raise RuntimeError("gold.zone_features is empty: nothing to forecast from")
    wm = pd.Timestamp(pc.max(ends).as_py())
    recent = load_table(cat, "silver.trip_events").scan(
        row_filter=And(EqualTo("event_type", "requested"),
                       GreaterThanOrEqual("event_time", (wm - pd.Timedelta(days=1)).isoformat())),
        selected_fields=("event_time",),
    ).to_arrow().column("event_time")
    if len(recent):
        slide = slide_of(settings)
        wm = min(wm, pd.Timestamp(pc.max(recent).as_py()).floor(slide) + slide)
    return wm


def forecast_batch(settings: "Settings", at: pd.Timestamp | datetime | str | None = None,
                   horizons: list[int] | None = None) -> ForecastResult:
    """Forecast every zone x horizon from the champions as of ``at`` (default: the latest closed window)."""
    from pyiceberg.expressions import EqualTo

    t0 = time.perf_counter()
    horizons = horizons or settings.training.horizons
    if at is None:
        at = _gold_watermark(settings)
    at = pd.Timestamp(at)
    at = (at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")).floor(slide_of(settings))
    lake = load_lake(settings, start=at - _LOOKBACK, end=at)
    cut = pd.DatetimeIndex([at])
    frames, versions, skipped = [], {}, {}
    for h in horizons:
        champ = load_champion(settings, h)
        if champ is None:
            skipped[h] = f"no champion for {model_name(settings, h)}: run `ridecast train`"
            continue
        bst, version = champ
        frame = build_frame(lake, cut, h, settings, with_label=False)
        X = frame[list(bst.feature_names)].to_numpy(np.float32)
        pred = np.clip(bst.inplace_predict(X).astype(float), 0.0, None)
        frames.append(
            pd.DataFrame(
                {
                    "zone": frame["zone"].to_numpy(),
                    "horizon_min": h,
                    "feature_time": at,
                    "target_start": at,
                    "target_end": at + pd.Timedelta(minutes=h),
                    "predicted_requests": pred,
                    "model_name": model_name(settings, h),
                    "model_version": version,
                    "created_at": datetime.now(timezone.utc),
                }
            )
        )
        versions[h] = version
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows = 0
    if len(out):
        out["horizon_min"] = out["horizon_min"].astype("int32")
        out["model_version"] = out["model_version"].astype("int32")
        rows = append_frame(settings, "gold.forecasts", out, replace=EqualTo("feature_time", at.isoformat()))
    acc = update_accuracy(settings)
    return ForecastResult(at, rows, versions, skipped, acc, time.perf_counter() - t0, out)


def _actual_counts(settings: "Settings", keys: pd.DataFrame) -> np.ndarray:
    """Requested events per row of ``keys`` (zone, target_start, target_end) from silver, half-open windows."""
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

    lo, hi = keys["target_start"].min(), keys["target_end"].max()
    ev = read_table(
        settings,
        "silver.trip_events",
        And(EqualTo("event_type", "requested"),
            And(GreaterThanOrEqual("event_time", lo.isoformat()), LessThan("event_time", hi.isoformat()))),
        ("event_time", "pickup_zone"),
    )
    out = np.zeros(len(keys), dtype=np.int64)
    times_by_zone = {z: np.sort(g["event_time"].to_numpy("datetime64[us]")) for z, g in ev.groupby("pickup_zone")}
    starts = keys["target_start"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
    ends = keys["target_end"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
    for i, z in enumerate(keys["zone"].to_numpy()):
        ts = times_by_zone.get(z)
        if ts is not None:
            out[i] = np.searchsorted(ts, ends[i], "left") - np.searchsorted(ts, starts[i], "left")
    return out


def update_accuracy(settings: "Settings") -> int:
    """Join closed-window forecasts with actuals; append rows not evaluated before. Returns rows appended."""
    from pyiceberg.expressions import LessThanOrEqual

    try:
        watermark = _gold_watermark(settings)
    except RuntimeError:
        return 0
    fc = read_table(settings, "gold.forecasts", LessThanOrEqual("target_end", watermark.isoformat()))
    if fc.empty:
        return 0
    key = ["zone", "horizon_min", "feature_time"]
    done = read_table(settings, "gold.forecast_accuracy", columns=tuple(key))
    if len(done):
        fc = fc.merge(done.assign(_done=1), on=key, how="left")
        fc = fc[fc["_done"].isna()].drop(columns="_done")
    if fc.empty:
        return 0
    for c in ("feature_time", "target_start", "target_end"):
        fc[c] = pd.to_datetime(fc[c], utc=True)
    fc = fc.reset_index(drop=True)
    actual = _actual_counts(settings, fc)
    acc = fc[["zone", "horizon_min", "feature_time", "target_start", "target_end", "predicted_requests", "model_name",
              "model_version"]].copy()
    acc["actual_requests"] = actual
    acc["error"] = acc["predicted_requests"] - acc["actual_requests"]
    acc["abs_error"] = acc["error"].abs()
    acc["evaluated_at"] = datetime.now(timezone.utc)
    return append_frame(settings, "gold.forecast_accuracy", acc)
