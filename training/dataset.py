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
  only), then dense ``zones x slide`` arrays (``flink.slide_minutes``; gold windows off that grid are refused
  rather than merged), so any interval count is two cumulative-sum lookups.
  Zones come from the data, not from the Singapore zone list, so any "events per place per time" data works.
* **Features** are defined once, in :mod:`training.features`, over a small source interface that
  :class:`LakeData` implements here and the online store implements in ``serve``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from training.features import GOLD_COLUMNS, SlideMismatchError, feature_columns, feature_rows

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


@dataclass
class LakeData:
    """Dense arrays of what the lake holds, on the slide grid starting at ``start`` (UTC).

    It is the training side's :class:`training.features.FeatureSource`.
    """

    zones: list[str]
    start: pd.Timestamp
    n_buckets: int
    # cum[z, k] = requests of zone z in [start, start + k * slide): interval sums are two lookups
    cum_requests: np.ndarray
    # gold[(window_minutes, column)][z, k] = value of the window ending at start + k*slide (NaN = no row)
    gold: dict[tuple[int, str], np.ndarray]
    # everything before this instant is complete: all windows ending by then have closed
    watermark: pd.Timestamp
    slide: pd.Timedelta

    @property
    def windows(self) -> list[int]:
        return sorted({w for w, _ in self.gold})

    def index(self, ts: pd.DatetimeIndex | pd.Timestamp) -> np.ndarray:
        return np.asarray((ts - self.start) // self.slide, dtype=np.int64)

    def _index_ns(self, ns: np.ndarray) -> np.ndarray:
        return (np.asarray(ns, dtype=np.int64) - self.start.as_unit("ns").value) // self.slide.value

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

    # FeatureSource
    def window_values(self, window_minutes: int, column: str, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = self._index_ns(ends)
        arr = self.gold.get((window_minutes, column))
        out = np.full((len(self.zones), len(idx)), np.nan)
        if arr is None:
            return out, np.zeros(len(idx), dtype=bool)
        known = (idx >= 0) & (idx < arr.shape[1])
        out[:, known] = arr[:, idx[known]]
        return out, known

    def requests(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return self.count(self._index_ns(starts), self._index_ns(ends))


def _check_on_grid(gold: pd.DataFrame, slide: pd.Timedelta) -> None:
    """Refuse gold windows off the slide grid: ``// slide`` would merge a finer lake's windows without a word."""
    if not len(gold):
        return
    ends = pd.to_datetime(gold["window_end"], utc=True)
    off = ends[(ends - pd.Timestamp(0, tz="UTC")) % slide != pd.Timedelta(0)]
    sizes = pd.to_timedelta(pd.Series(gold["window_minutes"].unique()).astype("int64"), unit="min")
    if len(off):
        raise SlideMismatchError(slide, off.iloc[0])
    bad = sizes[sizes % slide != pd.Timedelta(0)]
    if len(bad):
        raise SlideMismatchError(slide, f"{bad.iloc[0]} (a window size)")


def lake_from_frames(
    silver: pd.DataFrame,
    gold: pd.DataFrame,
    watermark: pd.Timestamp | None = None,
    zones: Sequence[str] | None = None,
    slide_minutes: int | None = None,
) -> LakeData:
    """Build :class:`LakeData` from silver (``event_time``, ``event_type``, ``pickup_zone``) and gold frames.

    ``slide_minutes`` is the feature job's slide (default: ``flink.slide_minutes`` of the process settings).
    """
    if slide_minutes is None:
        from ridecast.config import get_settings

        slide_minutes = get_settings().flink.slide_minutes
    slide = pd.Timedelta(minutes=slide_minutes)
    _check_on_grid(gold, slide)
    req = silver[silver["event_type"] == "requested"] if "event_type" in silver.columns else silver
    times = pd.to_datetime(req["event_time"], utc=True)
    if watermark is None:
        if len(gold):
            watermark = pd.to_datetime(gold["window_end"], utc=True).max()
        else:
            watermark = times.max().floor(slide) + slide
    watermark = pd.Timestamp(watermark)
    if len(times):
        # A replayed history ends: requests stop while outcomes (completions) of the last trips keep gold
        # windows coming for up to an hour. Those windows are not "zero demand", they are "no data": cap the
        # watermark at the last request. In a live stream the two are seconds apart, so this changes nothing.
        watermark = min(watermark, times.max().floor(slide) + slide)
    zone_list = (sorted(set(req["pickup_zone"]) | set(gold["zone"] if len(gold) else [])) if zones is None
                 else list(zones))
    zone_pos = {z: i for i, z in enumerate(zone_list)}
    starts = [times.min() if len(times) else watermark]
    if len(gold):
        starts.append(pd.to_datetime(gold["window_start"], utc=True).min())
    start = min(starts).floor(slide)
    n = int((watermark - start) // slide) + 1
    counts = np.zeros((len(zone_list), n), dtype=np.int64)
    if len(req):
        b = ((times - start) // slide).to_numpy(np.int64)
        z = req["pickup_zone"].map(zone_pos).to_numpy()
        keep = (b >= 0) & (b < n) & ~pd.isna(z)
        np.add.at(counts, (z[keep].astype(np.int64), b[keep]), 1)
    cum = np.zeros((len(zone_list), n + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=cum[:, 1:])
    gold_arrays: dict[tuple[int, str], np.ndarray] = {}
    if len(gold):
        ends = pd.to_datetime(gold["window_end"], utc=True)
        k = ((ends - start) // slide).to_numpy(np.int64)
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
    return LakeData(zone_list, start, n, cum, gold_arrays, watermark, slide)


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
    return lake_from_frames(silver, gold, watermark=watermark, zones=zones, slide_minutes=settings.flink.slide_minutes)


def cutoff_grid(lake: LakeData, settings: "Settings", horizon: int | None = None) -> pd.DatetimeIndex:
    """Cut-offs with enough history (``min_history_days``) and, if ``horizon``, a complete label window."""
    step = pd.Timedelta(minutes=settings.training.cutoff_minutes)
    if step % lake.slide:
        slide_min = lake.slide / pd.Timedelta(minutes=1)
        raise ValueError(f"training.cutoff_minutes must be a multiple of the {slide_min:g}-minute slide")
    first = (lake.start + pd.Timedelta(days=settings.training.min_history_days)).ceil(step)
    last = lake.watermark - (pd.Timedelta(minutes=horizon) if horizon else pd.Timedelta(0))
    last = last.floor(step)
    if last < first:
        return pd.DatetimeIndex([], tz="UTC")
    return pd.date_range(first, last, freq=step)


def build_frame(
    lake: LakeData,
    cutoffs: pd.DatetimeIndex,
    horizon: int,
    settings: "Settings",
    with_label: bool = True,
) -> pd.DataFrame:
    """The training set over the lake: :func:`training.features.feature_rows` with the lake as the source."""
    return feature_rows(lake, cutoffs, horizon, settings, with_label=with_label)
