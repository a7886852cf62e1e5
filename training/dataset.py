"""Point-in-time correct training sets: features known at cut-off ``t``, label = demand in ``[t, t+h)``.

Why the shapes are what they are:

* **What is known at t.** A gold window ``[end - W, end)`` is known once it has closed, i.e. ``end <= t``;
  silver-derived values only use events with ``event_time < t``. The label is the number of ``requested``
  events with ``t <= event_time < t + h`` — the same half-open convention as Flink's windows, so the label for
  ``h = W`` *is* the gold window that ends at ``t + h`` and nothing is counted twice or lost at the boundary.
* **Cut-off grid.** Cut-offs lie on a grid of ``training.cutoff_minutes`` (default 15): horizons are multiples of
  15, consecutive 5-minute cut-offs share 2/3 of their label window (near-duplicate rows that add little but
  triple training cost), and ``forecast-batch`` runs every 15 minutes. The grid must be a multiple of the slide.
* **One model per horizon**, so a feature like "requests in the same window last week" is defined for that
  horizon (``[t - 7d, t - 7d + h)``) rather than approximated.
* **Reading.** pyiceberg scans with a time ``row_filter`` and only the needed columns (silver: requested events
  only), then dense ``zones x 5-minute`` arrays, so any interval count is two cumulative-sum lookups.
  Zones come from the data, not from the Singapore zone list, so any "events per place per time" data works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = [
    "LakeData",
    "build_frame",
    "cutoff_grid",
    "feature_columns",
    "lake_from_frames",
    "load_lake",
]

SLIDE = pd.Timedelta(minutes=5)
DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)
GOLD_COLUMNS = ("requests", "completions", "cancellations", "events", "surge_mean", "wait_mean", "fare_mean")
# gold columns used beyond the latest window (only requests are lagged: the rest add little and cost width)
_GOLD_LAGS = 4


@dataclass
class LakeData:
    """Dense arrays of what the lake holds, on a 5-minute grid starting at ``start`` (UTC)."""

    zones: list[str]
    start: pd.Timestamp
    n_buckets: int
    # cum[z, k] = requests of zone z in [start, start + k * 5min): interval sums are two lookups
    cum_requests: np.ndarray
    # gold[(window_minutes, column)][z, k] = value of the window ending at start + k*5min (NaN = no row)
    gold: dict[tuple[int, str], np.ndarray]
    # everything before this instant is complete: all windows ending by then have closed
    watermark: pd.Timestamp

    @property
    def windows(self) -> list[int]:
        return sorted({w for w, _ in self.gold})

    def index(self, ts: pd.DatetimeIndex | pd.Timestamp) -> np.ndarray:
        return np.asarray((ts - self.start) // SLIDE, dtype=np.int64)

    def count(self, start_idx: np.ndarray, end_idx: np.ndarray) -> np.ndarray:
        """Requests per zone in [start, end) for each pair of grid indices; NaN where history is missing."""
        lo = np.asarray(start_idx)
        hi = np.asarray(end_idx)
        ok = (lo >= 0) & (hi <= self.n_buckets)
        lo_c = np.clip(lo, 0, self.n_buckets)
        hi_c = np.clip(hi, 0, self.n_buckets)
        vals = (self.cum_requests[:, hi_c] - self.cum_requests[:, lo_c]).astype(float)
        vals[:, ~ok] = np.nan
        return vals  # [zones, len(idx)]


def _floor(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.floor(SLIDE)


def lake_from_frames(
    silver: pd.DataFrame, gold: pd.DataFrame, watermark: pd.Timestamp | None = None, zones: Sequence[str] | None = None
) -> LakeData:
    """Build :class:`LakeData` from silver (``event_time``, ``event_type``, ``pickup_zone``) and gold frames."""
    req = silver[silver["event_type"] == "requested"] if "event_type" in silver.columns else silver
    times = pd.to_datetime(req["event_time"], utc=True)
    if watermark is None:
        if len(gold):
            watermark = pd.to_datetime(gold["window_end"], utc=True).max()
        else:
            watermark = _floor(times.max()) + SLIDE
    watermark = pd.Timestamp(watermark)
    if len(times):
        # A replayed history ends: requests stop while outcomes (completions) of the last trips keep gold
        # windows coming for up to an hour. Those windows are not "zero demand", they are "no data": cap the
        # watermark at the last request. In a live stream the two are seconds apart, so this changes nothing.
        watermark = min(watermark, _floor(times.max()) + SLIDE)
    zone_list = (sorted(set(req["pickup_zone"]) | set(gold["zone"] if len(gold) else [])) if zones is None
                 else list(zones))
    zone_pos = {z: i for i, z in enumerate(zone_list)}
    starts = [times.min() if len(times) else watermark]
    if len(gold):
        starts.append(pd.to_datetime(gold["window_start"], utc=True).min())
    start = _floor(min(starts))
    n = int((watermark - start) // SLIDE) + 1
    counts = np.zeros((len(zone_list), n), dtype=np.int64)
    if len(req):
        b = ((times - start) // SLIDE).to_numpy(np.int64)
        z = req["pickup_zone"].map(zone_pos).to_numpy()
        keep = (b >= 0) & (b < n) & ~pd.isna(z)
        np.add.at(counts, (z[keep].astype(np.int64), b[keep]), 1)
    cum = np.zeros((len(zone_list), n + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=cum[:, 1:])
    gold_arrays: dict[tuple[int, str], np.ndarray] = {}
    if len(gold):
        ends = pd.to_datetime(gold["window_end"], utc=True)
        k = ((ends - start) // SLIDE).to_numpy(np.int64)
        z = gold["zone"].map(zone_pos).to_numpy()
        ok = (k >= 0) & (k <= n) & ~pd.isna(z)
        for w in sorted(gold["window_minutes"].unique()):
            sel = ok & (gold["window_minutes"].to_numpy() == w)
            for col in GOLD_COLUMNS:
                if col not in gold.columns:
                    continue
                arr = np.full((len(zone_list), n + 1), np.nan)
                arr[z[sel].astype(np.int64), k[sel]] = pd.to_numeric(gold[col]).to_numpy(float)[sel]
                gold_arrays[(int(w), col)] = arr
    return LakeData(zone_list, start, n, cum, gold_arrays, watermark)


def load_lake(
    settings: "Settings",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    zones: Sequence[str] | None = None,
) -> LakeData:
    """Scan silver (requested events) and gold with pyiceberg, only the columns and time range needed.

    ``end`` caps what is read (the as-of instant): nothing at or after it is looked at, which is also how a
    backfilled history can be replayed as of any past time.
    """
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan, LessThanOrEqual

    from iceberg_catalog.catalog import load_table, open_catalog

    cat = open_catalog(settings)
    silver_t = load_table(cat, "silver.trip_events")
    gold_t = load_table(cat, "gold.zone_features")
    s_filter = EqualTo("event_type", "requested")
    g_filter = None
    if start is not None:
        s_filter = And(s_filter, GreaterThanOrEqual("event_time", start.isoformat()))
        g_filter = GreaterThanOrEqual("window_start", start.isoformat())
    if end is not None:
        s_filter = And(s_filter, LessThan("event_time", end.isoformat()))
        e = LessThanOrEqual("window_end", end.isoformat())
        g_filter = e if g_filter is None else And(g_filter, e)
    silver = silver_t.scan(row_filter=s_filter, selected_fields=("event_time", "pickup_zone")).to_pandas()
    silver["event_type"] = "requested"
    gold_kwargs = {"selected_fields": ("zone", "window_minutes", "window_start", "window_end", *GOLD_COLUMNS)}
    if g_filter is not None:
        gold_kwargs["row_filter"] = g_filter
    gold = gold_t.scan(**gold_kwargs).to_pandas()
    if silver.empty and gold.empty:
        raise RuntimeError("the lake has no silver events and no gold windows: run the pipeline (or ingest) first")
    watermark = None
    if end is not None and len(gold):
        watermark = min(pd.Timestamp(end), pd.to_datetime(gold["window_end"], utc=True).max())
    return lake_from_frames(silver, gold, watermark=watermark, zones=zones)


def cutoff_grid(lake: LakeData, settings: "Settings", horizon: int | None = None) -> pd.DatetimeIndex:
    """Cut-offs with enough history (``min_history_days``) and, if ``horizon``, a complete label window."""
    step = pd.Timedelta(minutes=settings.training.cutoff_minutes)
    if step % SLIDE:
        raise ValueError("training.cutoff_minutes must be a multiple of the 5-minute slide")
    first = (lake.start + pd.Timedelta(days=settings.training.min_history_days)).ceil(step)
    last = lake.watermark - (pd.Timedelta(minutes=horizon) if horizon else pd.Timedelta(0))
    last = last.floor(step)
    if last < first:
        return pd.DatetimeIndex([], tz="UTC")
    return pd.date_range(first, last, freq=step)


@lru_cache(maxsize=4)
def _holiday_set(country: str, years: tuple[int, ...]) -> frozenset[date]:
    if not country:
        return frozenset()
    import holidays

    return frozenset(holidays.country_holidays(country, years=list(years)).keys())


def feature_columns(lake_windows: Sequence[int]) -> list[str]:
    """The model's feature list, in order (it depends only on which gold windows exist)."""
    cols = ["hour_of_week", "hour_of_day", "day_of_week", "is_weekend", "is_holiday", "is_holiday_eve"]
    for w in lake_windows:
        cols += [f"w{w}_requests_lag{k}" for k in range(_GOLD_LAGS)]
        cols += [f"w{w}_{c}" for c in GOLD_COLUMNS if c != "requests"]
        cols.append(f"w{w}_trend")
    cols += [
        "recent_h", "recent_1d", "lag_1d", "lag_7d", "lag_14d", "lag_21d", "lag_28d",
        "weekly_mean", "recent_weekly_mean", "level_ratio", "seasonal_adjusted", "zone_mean_7d",
    ]
    return cols


def build_frame(
    lake: LakeData,
    cutoffs: pd.DatetimeIndex,
    horizon: int,
    settings: "Settings",
    with_label: bool = True,
) -> pd.DataFrame:
    """One row per (zone, cut-off): features known at the cut-off, and the label ``y`` in ``[t, t+h)``.

    Every value is read at grid index ``<= idx(t)`` (gold window ends, silver interval ends), which is the whole
    leakage argument; ``tests/test_training_dataset.py`` checks it by perturbing data after ``t``.
    """
    h = pd.Timedelta(minutes=horizon)
    if h > DAY:
        raise ValueError("horizons above one day would make the 'yesterday' lag overlap the future")
    nz, nt = len(lake.zones), len(cutoffs)
    t_idx = lake.index(cutoffs)
    hk = int(h // SLIDE)
    day_k, week_k = int(DAY // SLIDE), int(WEEK // SLIDE)
    cols: dict[str, np.ndarray] = {}

    def put(name: str, arr: np.ndarray) -> None:
        cols[name] = np.asarray(arr, dtype=float).reshape(nz * nt)

    local = cutoffs.tz_convert(settings.training.timezone)
    hod = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    dow = local.dayofweek.to_numpy()
    years = tuple(sorted(set(local.year) | {y + 1 for y in set(local.year)}))
    hol = _holiday_set(settings.training.holiday_country, years)
    days = local.date
    is_hol = np.array([d in hol for d in days], dtype=float)
    is_eve = np.array([(d + pd.Timedelta(days=1).to_pytimedelta()) in hol for d in days], dtype=float)
    tile = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (nz, nt))  # noqa: E731
    put("hour_of_week", tile(dow * 24 + hod))
    put("hour_of_day", tile(hod))
    put("day_of_week", tile(dow))
    put("is_weekend", tile(dow >= 5))
    put("is_holiday", tile(is_hol))
    put("is_holiday_eve", tile(is_eve))

    def gold_at(w: int, col: str, idx: np.ndarray, fill: float) -> np.ndarray:
        arr = lake.gold.get((w, col))
        if arr is None:
            return np.full((nz, nt), np.nan)
        ok = (idx >= 0) & (idx < arr.shape[1])
        out = np.full((nz, nt), np.nan)
        vals = arr[:, np.clip(idx, 0, arr.shape[1] - 1)]
        out[:, ok] = vals[:, ok]
        # no gold row for a closed window = no events = zero (counts); means stay missing
        if not np.isnan(fill):
            out[:, ok] = np.where(np.isnan(out[:, ok]), fill, out[:, ok])
        return out

    for w in lake.windows:
        wk = w // 5
        lags = []
        for k in range(_GOLD_LAGS):
            v = gold_at(w, "requests", t_idx - k * wk, 0.0)  # window ending at t - k*W  (<= t)
            put(f"w{w}_requests_lag{k}", v)
            lags.append(v)
        for c in GOLD_COLUMNS:
            if c == "requests":
                continue
            count_like = c in ("completions", "cancellations", "events")
            put(f"w{w}_{c}", gold_at(w, c, t_idx, 0.0 if count_like else np.nan))
        put(f"w{w}_trend", lags[0] - lags[1])

    recent_h = lake.count(t_idx - hk, t_idx)
    recent_1d = lake.count(t_idx - day_k - hk, t_idx - day_k)
    lag_1d = lake.count(t_idx - day_k, t_idx - day_k + hk)
    weekly = [lake.count(t_idx - n * week_k, t_idx - n * week_k + hk) for n in (1, 2, 3, 4)]
    weekly_recent = [lake.count(t_idx - n * week_k - hk, t_idx - n * week_k) for n in (1, 2, 3, 4)]
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            weekly_mean = np.nanmean(np.stack(weekly), axis=0)
            weekly_recent_mean = np.nanmean(np.stack(weekly_recent), axis=0)
        level_ratio = (recent_h + 1.0) / (weekly_recent_mean + 1.0)
        zone_mean = lake.count(t_idx - week_k, t_idx) / (week_k / hk)
    put("recent_h", recent_h)
    put("recent_1d", recent_1d)
    put("lag_1d", lag_1d)
    for n, v in zip((7, 14, 21, 28), weekly):
        put(f"lag_{n}d", v)
    put("weekly_mean", weekly_mean)
    put("recent_weekly_mean", weekly_recent_mean)
    put("level_ratio", level_ratio)
    put("seasonal_adjusted", weekly_mean * level_ratio)
    put("zone_mean_7d", zone_mean)

    frame = pd.DataFrame(
        {
            "zone": np.repeat(np.asarray(lake.zones, dtype=object), nt),
            "cutoff": np.tile(cutoffs.to_numpy(), nz),
            "horizon_min": horizon,
        }
    )
    frame["cutoff"] = pd.to_datetime(frame["cutoff"], utc=True)
    feats = pd.DataFrame({c: cols[c] for c in feature_columns(lake.windows)})
    frame = pd.concat([frame, feats], axis=1)
    if with_label:
        frame["y"] = lake.count(t_idx, t_idx + hk).reshape(nz * nt)
    return frame.sort_values(["cutoff", "zone"], kind="stable").reset_index(drop=True)
