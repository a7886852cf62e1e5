"""Feature vectors for "now" from an online store, computed by the training definition (``training.features``).

The store holds whole gold windows, never single events, so the request counts the features read over
``[start, end)`` are sums of consecutive windows (the longest configured window that divides the interval):
equal to the lake's slide-bucket counts wherever the windows saw every request the lake did.

A lookup first lists every window the definition will read (``lag_ends``, ``history_intervals``), fetches them
in one store call (one Redis pipeline), then runs :func:`training.features.feature_matrix` over what it fetched.
A read the listing missed fails loudly instead of answering "no window" (that would be silent skew).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from serve._errors import NoFeaturesError, OnlineStoreError, UnknownZoneError
from serve._rows import COLUMNS, history_span_ms
from training.features import (
    WEEK,
    FeatureMatrix,
    feature_columns,
    feature_matrix,
    history_intervals,
    lag_ends,
    slide_of,
)

if TYPE_CHECKING:
    from ridecast.config import Settings
    from serve._stores import OnlineStore

__all__ = ["FeatureLookup", "FetchedWindows", "OnlineFeatures", "is_stale"]


def is_stale(feature_time: datetime | pd.Timestamp, now: datetime | pd.Timestamp, max_age: timedelta) -> bool:
    """Features are stale when the newest closed window is more than ``max_age`` before ``now``."""
    return pd.Timestamp(now) - pd.Timestamp(feature_time) > pd.Timedelta(max_age)


@dataclass(frozen=True)
class FeatureLookup:
    """Feature vectors of some zones at one cut-off, and how old they are."""

    matrix: FeatureMatrix  # one row per zone, in ``matrix.zones`` order; ``matrix.columns`` as trained
    feature_time: pd.Timestamp  # the cut-off: every window the vectors read ended at or before it
    now: pd.Timestamp
    max_age: pd.Timedelta

    @property
    def zones(self) -> list[str]:
        return self.matrix.zones

    @property
    def frame(self) -> pd.DataFrame:
        """zone, cutoff, horizon_min and the features, like a training row (built on demand)."""
        m = self.matrix
        head = pd.DataFrame({"zone": m.zones, "cutoff": self.feature_time, "horizon_min": m.horizon})
        return pd.concat([head, pd.DataFrame(m.values, columns=m.columns)], axis=1)

    @property
    def age(self) -> pd.Timedelta:
        return self.now - self.feature_time

    @property
    def stale(self) -> bool:
        return is_stale(self.feature_time, self.now, self.max_age)

    def seasonal_naive(self, zone: str) -> float:
        """The stale fallback: requests in the same window one week earlier (``lag_7d``, the seasonal-naive
        baseline of ``training.baselines``); NaN when the store's history does not reach back a week."""
        return float(self.matrix.values[self.matrix.zones.index(zone), self.matrix.columns.index("lag_7d")])

    def vector(self, zone: str, columns: Sequence[str] | None = None) -> np.ndarray:
        """One zone's features, in ``columns`` order (a model's ``feature_names``) or the definition's."""
        row = self.matrix.values[self.matrix.zones.index(zone)]
        if columns is None:
            return row
        return row[[self.matrix.columns.index(c) for c in columns]]


def _tile(length_ms: int, windows: Sequence[int]) -> int:
    """The longest window (minutes) that tiles an interval of ``length_ms`` exactly."""
    fits = [w for w in windows if length_ms % (w * 60_000) == 0]
    if not fits:
        raise OnlineStoreError(
            f"an interval of {length_ms // 60_000} minutes is not a whole number of any window in "
            f"flink.window_minutes={list(windows)}: online features need every horizon to be a multiple of a window"
        )
    return max(fits)


_NS_PER_MS = 1_000_000


def _ms(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, dtype=np.int64) // _NS_PER_MS


class _Fetched:
    """A :class:`training.features.FeatureSource` over windows fetched from the store for one lookup."""

    def __init__(
        self,
        zones: list[str],
        windows: list[int],
        slide: pd.Timedelta,
        since: int,
        watermark: int,
        data: dict[int, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        self.zones, self.windows, self.slide = zones, windows, slide
        self._since, self._watermark, self._data = since, watermark, data

    def _values(self, w: int, ends_ms: np.ndarray, col: int) -> np.ndarray:
        have, values = self._data[w]
        pos = np.searchsorted(have, ends_ms)
        if len(ends_ms) and (pos.max() >= len(have) or (have[np.minimum(pos, len(have) - 1)] != ends_ms).any()):
            raise OnlineStoreError(
                "the features read a window the lookup did not fetch (serve._lookup is behind training.features)"
            )
        return values[:, pos, col]

    def window_values(self, window_minutes: int, column: str, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = _ms(ends)
        known = (e >= self._since) & (e <= self._watermark)
        out = np.full((len(self.zones), len(e)), np.nan)
        if window_minutes in self._data and known.any():
            out[:, known] = self._values(window_minutes, e[known], COLUMNS.index(column))
        return out, known

    def requests(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        lo, hi = _ms(starts), _ms(ends)
        if len(lo) and (hi - lo != hi[0] - lo[0]).any():
            raise OnlineStoreError("request intervals of one read must have one length (see history_intervals)")
        out = np.full((len(self.zones), len(lo)), np.nan)
        ok = (lo >= self._since) & (hi <= self._watermark)
        if not ok.any():
            return out
        w = _tile(int(hi[0] - lo[0]), self.windows)
        tiles = lo[ok, None] + np.arange(1, (hi[0] - lo[0]) // (w * 60_000) + 1) * w * 60_000  # window ends
        vals = self._values(w, tiles.ravel(), COLUMNS.index("requests")).reshape(len(self.zones), *tiles.shape)
        out[:, ok] = np.nansum(vals, axis=2)  # a covered window without a row had no events
        return out


class OnlineFeatures:
    """What a serving replica asks: the feature vectors of some zones as of the newest closed window.

    The feature time is the newest window end in the store. Flink emits every zone's windows for one end together
    and the feed stores a poll's rows in one upsert, so a lookup can see an end whose burst is only partly stored
    (a missing zone then reads as "no events") only when one burst spans two polls; if that shows up under load,
    a settle delay (use the previous end until the next one arrives) is the fix, at one slide of freshness.
    """

    def __init__(self, store: "OnlineStore", settings: "Settings") -> None:
        self.store, self.settings = store, settings
        self.windows = list(settings.flink.window_minutes)
        self.slide = slide_of(settings)
        self.span_ms = history_span_ms(settings)
        self.max_age = pd.Timedelta(seconds=settings.serving.max_feature_age_s)
        self._zones: frozenset[str] = frozenset()
        for h in settings.training.horizons:  # fail at start-up, not on the first request
            _tile(h * 60_000, self.windows)
        _tile(int(WEEK / pd.Timedelta(milliseconds=1)), self.windows)

    @property
    def columns(self) -> list[str]:
        return feature_columns(self.windows)

    def _check_zones(self, zones: Sequence[str] | None) -> list[str]:
        """The zones asked for, all known to the store. The zone list is cached (zones appear, they do not go away)
        and re-read only when a zone is not in it, so a lookup costs no extra store round trip."""
        if zones is None:
            self._zones = frozenset(self.store.zones())
            return sorted(self._zones)
        zones = list(zones)
        if not self._zones.issuperset(zones):
            self._zones = frozenset(self.store.zones())
            unknown = sorted(set(zones) - self._zones)
            if unknown:
                raise UnknownZoneError(unknown)
        return zones

    def _fetch_plan(self, cutoffs: np.ndarray, horizon: pd.Timedelta, since: int, wm: int) -> dict[int, np.ndarray]:
        """Every window end (ms) the definition will read, per window size, within ``[since, wm]``."""
        wanted: dict[int, list[np.ndarray]] = {w: [] for w in self.windows}
        for w in self.windows:
            for ends in lag_ends(cutoffs, w):
                e = _ms(ends)
                wanted[w].append(e[(e >= since) & (e <= wm)])
        for lo, hi in history_intervals(cutoffs, horizon).values():
            a, b = _ms(lo), _ms(hi)
            ok = (a >= since) & (b <= wm)
            w = _tile(int(b[0] - a[0]), self.windows)
            step = w * 60_000
            wanted[w].append((a[ok, None] + np.arange(1, (b[0] - a[0]) // step + 1) * step).ravel())
        return {w: np.unique(np.concatenate(v)) if v else np.empty(0, np.int64) for w, v in wanted.items()}

    def fetch(
        self,
        horizon: int,
        zones: Sequence[str] | None = None,
        at: datetime | pd.Timestamp | None = None,
    ) -> "FetchedWindows":
        """The store reads of a lookup, without computing the features: every window the vectors need.

        Raises :class:`NoFeaturesError` on an empty store and :class:`UnknownZoneError` for zones it never saw.
        """
        since, wm = self.store.bounds()
        if wm is None or since is None:
            raise NoFeaturesError("the online store holds no window yet: is the feature feed running?")
        cutoff = pd.Timestamp(wm, unit="ms", tz="UTC")
        if at is not None:
            at = pd.Timestamp(at)
            at = (at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")).floor(self.slide)
            if at > cutoff:
                raise NoFeaturesError(f"features as of {at} are not in the store yet (newest window ends {cutoff})")
            cutoff = at
        since = max(since, wm - self.span_ms)  # older windows may already be gone
        zones = self._check_zones(zones)
        cutoffs = pd.DatetimeIndex([cutoff]).as_unit("ns")
        plan = self._fetch_plan(cutoffs.asi8, pd.Timedelta(minutes=horizon), since, wm)
        raw = self.store.read(zones, plan)
        source = _Fetched(zones, self.windows, self.slide, since, wm, {w: (plan[w], raw[w]) for w in plan})
        return FetchedWindows(horizon, cutoffs, source)

    def lookup(
        self,
        horizon: int,
        zones: Sequence[str] | None = None,
        at: datetime | pd.Timestamp | None = None,
        now: datetime | pd.Timestamp | None = None,
    ) -> FeatureLookup:
        """Vectors for ``horizon`` at the store's newest closed window (or ``at``, which must not be newer)."""
        fetched = self.fetch(horizon, zones, at)
        matrix = feature_matrix(fetched.source, fetched.cutoffs, horizon, self.settings, with_label=False)
        now_ts = pd.Timestamp(now) if now is not None else pd.Timestamp(datetime.now(timezone.utc))
        now_ts = now_ts if now_ts.tzinfo else now_ts.tz_localize("UTC")
        return FeatureLookup(matrix, fetched.cutoffs[0], now_ts, self.max_age)


@dataclass(frozen=True)
class FetchedWindows:
    """What one lookup read from the store (a feature source for ``training.features``)."""

    horizon: int
    cutoffs: pd.DatetimeIndex
    source: _Fetched

    @property
    def windows_read(self) -> int:
        return sum(len(ends) * len(self.source.zones) for ends, _ in self.source._data.values())
