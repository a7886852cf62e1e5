"""Trip events of a simulated Singapore, drawn from :mod:`ridecast.sources.demand`.

Why it is built this way:

* **A trip is three facts, not one row.** Each request becomes a ``requested`` event and later a
  ``completed`` (at drop-off) or ``cancelled`` event, because that is what a ride-hailing backend emits
  and what the feature job must cope with: outcomes arrive minutes to an hour after their request.
  The v1 contract has no trip id field, so the trip is carried in the event id: ``<trip>-req``,
  ``<trip>-done``, ``<trip>-cxl`` (see :func:`trip_id`).
* **Supply lags demand.** Drivers follow the daily level of a zone, smoothed over an hour, not its
  minute-to-minute peaks, so the demand/supply ratio rises in peaks and in rain; waits and surge follow
  the ratio and long waits make riders cancel. That coupling gives the forecasting features signal.
* **Destinations are gravity-ish:** attractiveness (zone weight x a time-of-day factor by kind: CBD in the
  morning, heartlands in the evening and late at night) decaying with centroid distance. Fares are base +
  per km + per minute, times surge, with a minimum fare.
* **Streaming and reproducible.** Days are generated one at a time (memory is bounded by one day's trips
  plus the outcomes still pending), each from a Generator seeded with ``(seed, day, stream)``; events are
  emitted in event-time order. A window always draws whole local days and keeps the requests inside it,
  so splitting a run into pieces yields the same events as one run, and outcomes of the window's requests
  are emitted even when they fall after its end.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ridecast.config import Settings, get_settings
from ridecast.events import Zone, make_event
from ridecast.sources.deliver import Delivery, Target, deliver
from ridecast.sources.demand import MINUTES, SGT, as_local, day_demand, local_days, resolve_zones

__all__ = ["CANCELLED_SUFFIX", "COMPLETED_SUFFIX", "REQUESTED_SUFFIX", "SimulationResult", "default_start",
           "run_simulation", "simulate_events", "trip_id"]

STREAM_TRIPS = 3
REQUESTED_SUFFIX, COMPLETED_SUFFIX, CANCELLED_SUFFIX = "req", "done", "cxl"
_SUFFIX = (REQUESTED_SUFFIX, COMPLETED_SUFFIX, CANCELLED_SUFFIX)
_TYPE = ("requested", "completed", "cancelled")
_DEFAULT_KM = 8.0  # distance when a zone has no coordinates
_INTRA_KM = 2.0
_MIN_FARE = 8.0


def trip_id(event_id: str) -> str:
    """The trip an event belongs to: its id without the ``-req|-done|-cxl`` suffix."""
    return event_id.rsplit("-", 1)[0]


@dataclass(frozen=True)
class _Geo:
    km: np.ndarray  # (Z, Z) centroid distances
    dest_cdf: dict[str, np.ndarray]  # period -> (Z, Z) cumulative destination probabilities per origin


# Destination attractiveness by period and kind (x zone weight).
_ATTRACT = {
    "am": {"cbd": 3.0, "industrial": 2.0, "heartland": 0.6, "nightlife": 1.0, "airport": 1.0},
    "pm": {"cbd": 0.5, "industrial": 0.5, "heartland": 2.0, "nightlife": 1.2, "airport": 1.0},
    "night": {"cbd": 0.4, "industrial": 0.3, "heartland": 2.5, "nightlife": 0.8, "airport": 0.8},
    "day": {},
}


def _period_of_minute() -> np.ndarray:
    h = np.arange(MINUTES) // 60
    p = np.full(MINUTES, "day", dtype=object)
    p[(h >= 6) & (h < 10)] = "am"
    p[(h >= 16) & (h < 21)] = "pm"
    p[(h >= 22) | (h < 4)] = "night"
    return p


_PERIOD = _period_of_minute()


def _geo(zones: Sequence[Zone]) -> _Geo:
    lat = np.radians([z.lat for z in zones])
    lon = np.radians([z.lon for z in zones])
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin(dlon / 2) ** 2
    km = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1))) * 1.3  # road factor
    km = np.where(np.isfinite(km), km, _DEFAULT_KM)
    np.fill_diagonal(km, _INTRA_KM)
    weight = np.array([max(z.weight, 0.0) for z in zones]) + 1e-9
    decay = np.exp(-km / 12.0)
    cdf = {}
    for period, factors in _ATTRACT.items():
        attract = weight * np.array([factors.get(z.kind, 1.0) for z in zones])
        p = decay * attract[None, :]
        p /= p.sum(axis=1, keepdims=True)
        c = np.cumsum(p, axis=1)
        c[:, -1] = 1.0
        cdf[period] = c
    return _Geo(km=km, dest_cdf=cdf)


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average along axis 0 (minutes), edges padded by reflection."""
    pad = window // 2
    xp = np.pad(x, ((pad, window - 1 - pad), (0, 0)), mode="reflect")
    c = np.cumsum(xp, axis=0)
    c = np.vstack([np.zeros((1, x.shape[1])), c])
    return (c[window:] - c[:-window]) / window


_COLS = ("t", "etype", "day", "idx", "pz", "dz", "fare", "wait", "surge")


def _day_trips(
    day, seed: int, zones: tuple[Zone, ...], geo: _Geo, scale: float, lo: int, hi: int, tz: timezone
) -> dict[str, np.ndarray]:
    """All events (requests and their outcomes) of the requests of local ``day`` that fall in [lo, hi)."""
    dd = day_demand(day, seed=seed, zones=zones, scale=scale, tz=tz)
    rng = np.random.default_rng([seed, day.toordinal(), STREAM_TRIPS])
    z = len(zones)
    counts = rng.poisson(dd.expected)  # (1440, Z)
    flat = counts.ravel()
    cell = np.repeat(np.arange(flat.size), flat)
    minute, pz = cell // z, cell % z
    n = cell.size
    t = dd.start_ms + minute.astype(np.int64) * 60_000 + rng.integers(0, 60_000, size=n)
    order = np.argsort(t, kind="stable")
    t, minute, pz = t[order], minute[order], pz[order]

    # Demand/supply: supply tracks the hour-smoothed dry demand and the zone's daily level.
    dry = dd.expected / dd.rain[:, None]
    supply = 1.1 * (0.6 * _smooth(dry, 61) + 0.4 * dry.mean(axis=0, keepdims=True)) + 1e-3
    ratio = (dd.expected / supply)[minute, pz]
    surge = np.clip(1.0 + 1.2 * (ratio - 1.0) + rng.normal(0, 0.05, n), 1.0, 3.0).round(1)
    wait = np.clip(240.0 * ratio**1.5 * rng.lognormal(0, 0.35, n), 30.0, 3600.0).round(0)
    p_cancel = 0.04 + 0.5 / (1.0 + np.exp(-(wait - 600.0) / 150.0))
    cancelled = rng.random(n) < p_cancel

    dz = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    periods = _PERIOD[minute]
    for period, cdf in geo.dest_cdf.items():
        sel_all = np.flatnonzero(periods == period)
        for s in range(0, sel_all.size, 50_000):  # bounded temporaries (n x Z)
            sel = sel_all[s : s + 50_000]
            dz[sel] = np.minimum((u[sel, None] > cdf[pz[sel]]).sum(axis=1), z - 1)
    km = geo.km[pz, dz] * rng.lognormal(0, 0.15, n)
    speed_kmh = 28.0 / np.maximum(ratio, 1.0) ** 0.3
    ride_min = 3.0 + 60.0 * km / speed_kmh
    fare = np.maximum((3.5 + 0.7 * km + 0.2 * ride_min) * surge, _MIN_FARE).round(2)
    gave_up_after = np.maximum(wait * rng.uniform(0.3, 1.0, n), 30.0).round(0)
    t_out = t + np.where(cancelled, gave_up_after * 1000, (wait + ride_min * 60.0) * 1000).astype(np.int64)

    keep = (t >= lo) & (t < hi)
    idx = np.flatnonzero(keep)
    m = idx.size
    ymd = day.year * 10000 + day.month * 100 + day.day
    nan = np.full(m, np.nan)
    return {
        "t": np.concatenate([t[idx], t_out[idx]]),
        "etype": np.concatenate([np.zeros(m, np.int8), np.where(cancelled[idx], 2, 1).astype(np.int8)]),
        "day": np.full(2 * m, ymd, np.int64),
        "idx": np.concatenate([idx, idx]),
        "pz": np.concatenate([pz[idx], pz[idx]]),
        "dz": np.concatenate([dz[idx], dz[idx]]),
        "fare": np.concatenate([nan, np.where(cancelled[idx], np.nan, fare[idx])]),
        "wait": np.concatenate([nan, np.where(cancelled[idx], gave_up_after[idx], wait[idx])]),
        "surge": np.concatenate([surge[idx], surge[idx]]),
    }


def _emit(cols: dict[str, np.ndarray], codes: tuple[str, ...], prefix: str) -> Iterator[dict[str, Any]]:
    t, et, day, idx = cols["t"].tolist(), cols["etype"].tolist(), cols["day"].tolist(), cols["idx"].tolist()
    pz, dz, fare, wait, surge = (cols[c].tolist() for c in ("pz", "dz", "fare", "wait", "surge"))
    for i in range(len(t)):
        e = et[i]
        f, w = fare[i], wait[i]
        yield make_event(
            f"{prefix}-{day[i]}-{idx[i]:06d}-{_SUFFIX[e]}",
            t[i],
            _TYPE[e],
            codes[pz[i]],
            dropoff_zone=codes[dz[i]],
            fare=None if f != f else f,
            wait_seconds=None if w != w else w,
            surge=surge[i],
        )


def simulate_events(
    start: datetime,
    duration: timedelta,
    *,
    seed: int = 0,
    zones: Sequence[Zone] | None = None,
    scale: float = 1.0,
    tz: timezone = SGT,
) -> Iterator[dict[str, Any]]:
    """Trip events (v1 dicts) for requests in ``[start, start + duration)``, in event-time order.

    Naive ``start`` is local time of the simulated city (SGT). Outcomes of requests near the end may lie
    after the window's end. Deterministic in ``seed``; ``zones`` defaults to the configured zone list.
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    zs = resolve_zones(zones)
    codes = tuple(z.zone for z in zs)
    geo = _geo(zs)
    start = as_local(start, tz)
    lo = int(start.timestamp() * 1000)
    hi = int((start + duration).timestamp() * 1000)
    prefix = f"sim{seed}"
    pending: dict[str, np.ndarray] | None = None
    days = local_days(start, start + duration, tz) if hi > lo else []
    for i, d in enumerate(days):
        fresh = _day_trips(d, seed, zs, geo, scale, lo, hi, tz)
        cols = fresh if pending is None else {c: np.concatenate([pending[c], fresh[c]]) for c in _COLS}
        order = np.lexsort((cols["idx"], cols["day"], cols["etype"], cols["t"]))
        cols = {c: v[order] for c, v in cols.items()}
        if i + 1 < len(days):  # nothing later can precede the next day's first request
            nd = days[i + 1]
            horizon = int(datetime(nd.year, nd.month, nd.day, tzinfo=tz).timestamp() * 1000)
            cut = int(np.searchsorted(cols["t"], horizon, side="left"))
        else:
            cut = cols["t"].size
        yield from _emit({c: v[:cut] for c, v in cols.items()}, codes, prefix)
        pending = {c: v[cut:] for c, v in cols.items()}


@dataclass(frozen=True)
class SimulationResult:
    start: datetime
    duration: timedelta
    seed: int
    event_types: dict[str, int]
    delivery: Delivery
    seconds: float


def default_start(duration: timedelta, now: datetime | None = None) -> datetime:
    """The hour that ends a run of ``duration`` (and the outcomes of its last requests) before ``now``.

    The pipeline rejects events from the future, so a default run must be over by the time it is sent.
    """
    begin = (now or datetime.now(SGT)).astimezone(SGT) - duration - timedelta(hours=2)
    return begin.replace(minute=0, second=0, microsecond=0)


def run_simulation(start: datetime, duration: timedelta, *, seed: int = 0, scale: float = 1.0,
                   target: Target | str = Target.kafka, path: str | Path | None = None,
                   settings: Settings | None = None, speedup: float | None = None,
                   progress: bool = True) -> SimulationResult:
    """Simulate ``duration`` from ``start`` and deliver it; a backfill without ``path`` gets one under state_dir."""
    if duration <= timedelta(0):
        raise ValueError("duration must be positive")
    target = Target(target)
    s = settings or get_settings()
    if path is None and target is Target.backfill:
        path = s.state_dir / "backfill" / f"sim-{seed}-{start:%Y%m%dT%H%M}-{int(duration.total_seconds())}s.jsonl"
    types: collections.Counter[str] = collections.Counter()

    def counted() -> Iterator[dict[str, Any]]:
        for event in simulate_events(start, duration, seed=seed, scale=scale):
            types[event["event_type"]] += 1
            yield event

    t0 = time.monotonic()
    delivery = deliver(counted(), target, s, path=path, speedup=speedup, progress=progress)
    return SimulationResult(start, duration, seed, dict(sorted(types.items())), delivery, time.monotonic() - t0)
