"""The one feature definition: what a model sees at cut-off ``t``, whoever holds the data.

Training reads the lake (``training.dataset.LakeData``: Iceberg silver and gold) and serving reads the online
store (``serve``): both hand :func:`feature_rows` a :class:`FeatureSource`, so the vector a replica builds for "now"
is computed by the same lines of code as the training row for the same cut-off. A second, hand-kept copy of the
features in the serving path is how training/serving skew starts; ``tests/integration/test_online_store.py``
compares the two feature by feature.

The source answers two questions, both on the slide grid of the Flink job (``flink.slide_minutes``):

* **window values**: gold's HOP window ``[end - W, end)`` of each zone for given window ends (a closed window with
  no row had no events), and which of those ends the source covers at all;
* **request counts** per zone over ``[start, end)`` intervals, NaN where the interval reaches outside what the
  source holds (before its history starts or after its watermark).

Intervals and window ends are whole slides apart from the cut-off, so a source can answer from slide-sized
buckets (the lake) or from whole gold windows (the online store, which never sees single events).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = [
    "DAY",
    "GOLD_COLUMNS",
    "HISTORY",
    "WEEK",
    "FeatureMatrix",
    "FeatureSource",
    "SlideMismatchError",
    "feature_columns",
    "feature_matrix",
    "feature_rows",
    "history_intervals",
    "lag_ends",
    "slide_of",
]

DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)
GOLD_COLUMNS = ("requests", "completions", "cancellations", "events", "surge_mean", "wait_mean", "fare_mean")
# gold columns used beyond the latest window (only requests are lagged: the rest add little and cost width)
_GOLD_LAGS = 4
_WEEKS = (1, 2, 3, 4)
# how far back any feature reads, beyond the horizon itself: the 4-weekly same-slot lag's "recent" interval
HISTORY = 4 * WEEK


class SlideMismatchError(ValueError):
    """Data on a finer time grid than ``flink.slide_minutes`` says: bucketing it would merge windows silently."""

    def __init__(self, slide: pd.Timedelta, example: object, what: str = "gold.zone_features") -> None:
        minutes = slide / pd.Timedelta(minutes=1)
        self.slide = slide
        super().__init__(
            f"{what} has a window ending at {example}, off the {minutes:g}-minute slide grid: the data was written "
            f"with a shorter slide than flink.slide_minutes={minutes:g}; set RIDECAST_FLINK__SLIDE_MINUTES to the "
            "feature job's slide"
        )


def slide_of(settings: "Settings") -> pd.Timedelta:
    """The feature job's slide, the grid every window end and cut-off lies on."""
    return pd.Timedelta(minutes=settings.flink.slide_minutes)


class FeatureSource(Protocol):
    """What the feature definition needs to read; arrays are ``[len(zones), len(ends)]``, zones in this order.

    Instants are epoch nanoseconds (UTC) as ``int64`` arrays: a lookup does a few dozen of these reads, and
    pandas index arithmetic would cost more than the reads themselves."""

    @property
    def zones(self) -> Sequence[str]: ...

    @property
    def windows(self) -> Sequence[int]:
        """Gold window sizes (minutes) the source holds; the feature list depends on them."""
        ...

    @property
    def slide(self) -> pd.Timedelta: ...

    def window_values(self, window_minutes: int, column: str, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gold ``column`` of the ``window_minutes`` window ending at each of ``ends`` (NaN: no row), and a
        ``[len(ends)]`` mask of the ends the source covers (there, no row means a window without events)."""
        ...

    def requests(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Requested events per zone in ``[start, end)``; NaN where the interval leaves the covered range."""
        ...


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


def _ns(x: pd.Timedelta) -> int:
    return int(x.value)


def history_intervals(cutoffs: np.ndarray, horizon: pd.Timedelta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every request-count interval the features read, by name: ``(starts, ends)`` in epoch ns, all ending at or
    before t. Named once here so an online store can list what it must fetch and keep (``HISTORY`` + horizon).
    """
    h, t, day, week = _ns(horizon), cutoffs, _ns(DAY), _ns(WEEK)
    out = {"recent_h": (t - h, t), "recent_1d": (t - day - h, t - day), "lag_1d": (t - day, t - day + h)}
    for n in _WEEKS:
        out[f"lag_{7 * n}d"] = (t - n * week, t - n * week + h)
        out[f"recent_{7 * n}d"] = (t - n * week - h, t - n * week)
    out["week"] = (t - week, t)
    return out


def lag_ends(cutoffs: np.ndarray, window_minutes: int) -> list[np.ndarray]:
    """Ends (epoch ns) of the gold windows whose requests are lagged: ``t - k*W`` for ``k`` in ``0..3`` (the
    other columns are read at ``t`` only, the first of these)."""
    size = _ns(pd.Timedelta(minutes=window_minutes))
    return [cutoffs - k * size for k in range(_GOLD_LAGS)]


@lru_cache(maxsize=4)
def _holiday_set(country: str, years: tuple[int, ...]) -> frozenset[date]:
    if not country:
        return frozenset()
    import holidays

    return frozenset(holidays.country_holidays(country, years=list(years)).keys())


def _check_grid(source: FeatureSource, horizon: pd.Timedelta) -> None:
    slide = source.slide
    minutes = slide / pd.Timedelta(minutes=1)
    if horizon % slide:
        raise ValueError(f"horizon {horizon} is not a multiple of the {minutes:g}-minute slide")
    bad = [w for w in source.windows if pd.Timedelta(minutes=w) % slide]
    if bad:
        raise ValueError(f"windows {bad} are not multiples of the {minutes:g}-minute slide")


@dataclass(frozen=True)
class FeatureMatrix:
    """The features of ``zones x cutoffs`` as one float64 array, zone-major (the row of zone i at cut-off j is
    ``i * len(cutoffs) + j``): what a serving replica feeds a model without building a DataFrame per request."""

    zones: list[str]
    cutoffs: pd.DatetimeIndex
    horizon: int
    columns: list[str]
    values: np.ndarray  # [len(zones) * len(cutoffs), len(columns)]
    label: np.ndarray | None  # y in [t, t+h), same rows


def feature_rows(
    source: FeatureSource,
    cutoffs: pd.DatetimeIndex,
    horizon: int,
    settings: "Settings",
    with_label: bool = True,
) -> pd.DataFrame:
    """One row per (zone, cut-off): features known at the cut-off, and (``with_label``) ``y`` in ``[t, t+h)``.

    Every value is read at or before ``t`` (gold window ends, count interval ends), which is the whole leakage
    argument; ``tests/integration/test_training_dataset.py`` checks it by perturbing data after ``t``.
    """
    m = feature_matrix(source, cutoffs, horizon, settings, with_label=with_label)
    nz, nt = len(m.zones), len(cutoffs)
    frame = pd.DataFrame(
        {
            "zone": np.repeat(np.asarray(m.zones, dtype=object), nt),
            "cutoff": np.tile(cutoffs.to_numpy(), nz),
            "horizon_min": horizon,
        }
    )
    frame["cutoff"] = pd.to_datetime(frame["cutoff"], utc=True)
    feats = pd.DataFrame({c: m.values[:, i] for i, c in enumerate(m.columns)})
    frame = pd.concat([frame, feats], axis=1)
    if m.label is not None:
        frame["y"] = m.label
    return frame.sort_values(["cutoff", "zone"], kind="stable").reset_index(drop=True)


def feature_matrix(
    source: FeatureSource,
    cutoffs: pd.DatetimeIndex,
    horizon: int,
    settings: "Settings",
    with_label: bool = True,
) -> FeatureMatrix:
    """:func:`feature_rows` without the DataFrame (the definition itself lives here)."""
    h = pd.Timedelta(minutes=horizon)
    if h > DAY:
        raise ValueError("horizons above one day would make the 'yesterday' lag overlap the future")
    _check_grid(source, h)
    zones = list(source.zones)
    nz, nt = len(zones), len(cutoffs)
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

    t_ns = cutoffs.as_unit("ns").asi8

    def gold_at(w: int, col: str, ends: np.ndarray, fill: float) -> np.ndarray:
        vals, known = source.window_values(w, col, ends)
        out = np.full((nz, nt), np.nan)
        out[:, known] = vals[:, known]
        # no gold row for a closed window = no events = zero (counts); means stay missing
        if not np.isnan(fill):
            out[:, known] = np.where(np.isnan(out[:, known]), fill, out[:, known])
        return out

    for w in source.windows:
        lags = []
        for k, ends in enumerate(lag_ends(t_ns, w)):
            v = gold_at(w, "requests", ends, 0.0)  # window ending at t - k*W  (<= t)
            put(f"w{w}_requests_lag{k}", v)
            lags.append(v)
        for c in GOLD_COLUMNS:
            if c == "requests":
                continue
            count_like = c in ("completions", "cancellations", "events")
            put(f"w{w}_{c}", gold_at(w, c, t_ns, 0.0 if count_like else np.nan))
        put(f"w{w}_trend", lags[0] - lags[1])

    counts = {name: source.requests(lo, hi) for name, (lo, hi) in history_intervals(t_ns, h).items()}
    weekly = [counts[f"lag_{7 * n}d"] for n in _WEEKS]
    weekly_recent = [counts[f"recent_{7 * n}d"] for n in _WEEKS]
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            weekly_mean = np.nanmean(np.stack(weekly), axis=0)
            weekly_recent_mean = np.nanmean(np.stack(weekly_recent), axis=0)
        recent_h = counts["recent_h"]
        level_ratio = (recent_h + 1.0) / (weekly_recent_mean + 1.0)
        zone_mean = counts["week"] / (WEEK / h)
    put("recent_h", recent_h)
    put("recent_1d", counts["recent_1d"])
    put("lag_1d", counts["lag_1d"])
    for n, v in zip((7, 14, 21, 28), weekly):
        put(f"lag_{n}d", v)
    put("weekly_mean", weekly_mean)
    put("recent_weekly_mean", weekly_recent_mean)
    put("level_ratio", level_ratio)
    put("seasonal_adjusted", weekly_mean * level_ratio)
    put("zone_mean_7d", zone_mean)

    columns = feature_columns(source.windows)
    values = np.empty((nz * nt, len(columns)))
    for i, c in enumerate(columns):
        values[:, i] = cols[c]
    label = source.requests(t_ns, t_ns + _ns(h)).reshape(nz * nt) if with_label else None
    return FeatureMatrix(zones, cutoffs, horizon, columns, values, label)
