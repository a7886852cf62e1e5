"""The demand model of a simulated Singapore: expected ride requests per zone per minute.

Why it is built this way:

* **Intensity, not events.** This module returns an expected rate (requests per zone-minute); the
  simulator draws Poisson counts from it. Forecast models can then be scored against the true intensity,
  not only against one noisy draw.
* **Shape by zone kind, level by zone weight.** Demand in a planning area is its weight (from the zone list,
  so zones stay data) times an hour-of-day profile of its *kind*: heartlands empty out in the weekday
  morning, the CBD in the evening, nightlife zones peak late on Friday/Saturday nights, the airport follows
  flight banks, industrial estates follow shift changes, nature reserves barely register. Unknown kinds
  (zone lists derived from user data) get a blended generic profile.
* **The calendar is Singapore's.** Times are local (SGT, UTC+8, no DST); public holidays from the
  ``holidays`` package look like a Sunday and their eve gets a Friday-like late night.
* **Rain is the big exogenous shock** in Singapore: short, intense afternoon spells lift demand 20-50%
  for 1-3 h (and, in :mod:`ridecast.sources.simulate`, waits and surge), which is what makes features like
  "last 15 minutes vs. usual" useful.
* **Deterministic per (seed, day).** Each local day draws from its own ``numpy`` Generator seeded with
  ``(seed, day ordinal, stream)``, so any window of any length reproduces the same days, and simulating
  two halves gives the same events as simulating the whole.
* **Calibrated totals.** Rates are scaled so an ordinary weekday is ``scale`` x 50,000 expected requests
  across the zone list (weekends, holidays and rain move a day within ~40-60k).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Sequence

import numpy as np

from ridecast.events import Zone, load_zones

__all__ = [
    "SGT",
    "WEEKDAY_TARGET",
    "DayDemand",
    "DemandFrame",
    "day_demand",
    "day_type",
    "expected_demand",
    "holiday_name",
    "is_holiday_eve",
    "kind_profile",
    "local_days",
    "rain_spells",
    "resolve_zones",
    "as_local",
]

SGT = timezone(timedelta(hours=8), "SGT")
WEEKDAY_TARGET = 50_000.0  # expected requests on an ordinary dry weekday at scale=1
MINUTES = 1440
_NOISE_BLOCK = 5  # minutes per noise step: demand wobbles, but not every minute independently
_ZONE_DAY_SIGMA = 0.08
_BLOCK_SIGMA = 0.12

# Random streams of one (seed, day): fixed numbers so adding a stream never shifts another.
STREAM_RAIN, STREAM_NOISE = 1, 2

# Hour-of-day profiles (value at the middle of each hour, relative units), by kind and day type.
# Hours 0-3 describe the tail of the previous evening; the weekend late-night lift is applied on top
# (see _night_lift), so a Saturday 01:00 is busy because Friday was a night out, not because of Saturday.
_H = {
    "heartland": {
        "weekday": [.15, .08, .05, .04, .06, .3, 1.2, 2.4, 2.6, 1.5, .9, .9,
                    1.0, .9, .8, .9, 1.0, 1.2, 1.3, 1.3, 1.1, .9, .6, .35],
        "saturday": [.3, .2, .12, .08, .06, .1, .3, .6, .9, 1.2, 1.5, 1.6,
                     1.6, 1.5, 1.4, 1.4, 1.4, 1.5, 1.5, 1.4, 1.2, 1.0, .8, .5],
        "sunday": [.3, .2, .12, .08, .06, .1, .3, .6, .9, 1.2, 1.5, 1.6,
                   1.6, 1.5, 1.4, 1.4, 1.4, 1.5, 1.4, 1.2, .9, .7, .5, .3],
    },
    "cbd": {
        "weekday": [.15, .08, .04, .03, .04, .1, .3, .6, .8, .8, .8, 1.0,
                    1.5, 1.3, .9, .9, 1.1, 2.0, 3.0, 2.6, 1.6, 1.1, .8, .4],
        "saturday": [.2, .12, .06, .04, .04, .06, .15, .25, .35, .45, .55, .7,
                     .9, .9, .8, .8, .8, .9, 1.0, 1.0, .8, .6, .5, .3],
        "sunday": [.2, .12, .06, .04, .04, .06, .15, .2, .3, .4, .5, .6,
                   .8, .8, .7, .7, .7, .8, .8, .7, .6, .4, .3, .2],
    },
    "nightlife": {
        "weekday": [.5, .3, .2, .1, .05, .05, .1, .3, .5, .5, .6, .8,
                    1.1, 1.0, .9, .9, 1.0, 1.3, 1.6, 1.9, 1.9, 1.8, 1.6, 1.0],
        "saturday": [.6, .4, .25, .12, .06, .05, .1, .2, .4, .6, 1.0, 1.4,
                     1.7, 1.7, 1.6, 1.6, 1.7, 1.8, 1.9, 2.1, 2.2, 2.2, 2.0, 1.6],
        "sunday": [.6, .4, .25, .12, .06, .05, .1, .2, .4, .6, .9, 1.3,
                   1.5, 1.5, 1.4, 1.4, 1.4, 1.5, 1.6, 1.6, 1.4, 1.2, .9, .6],
    },
    "airport": {  # departures (early morning, evening) and arrival banks (morning, afternoon, late night)
        "weekday": [1.2, .9, .4, .2, .3, .6, 1.4, 1.8, 1.5, 1.0, .9, 1.0,
                    1.1, 1.3, 1.5, 1.6, 1.3, 1.1, 1.0, 1.1, 1.3, 1.6, 1.9, 1.7],
    },
    "industrial": {  # shift changes around 06-07, 15, 18 and 22-23
        "weekday": [.3, .1, .05, .05, .1, .6, 1.8, 2.2, 1.0, .6, .5, .6,
                    .8, .6, 1.2, 2.0, 1.2, 1.6, 1.8, 1.2, .6, .6, 1.4, 1.8],
    },
    "nature": {
        "weekday": [0, 0, 0, 0, 0, 0, .02, .1, .2, .3, .3, .3,
                    .3, .3, .3, .3, .3, .25, .15, .05, .02, 0, 0, 0],
        "saturday": [0, 0, 0, 0, 0, 0, .05, .3, .6, .8, .8, .8,
                     .8, .8, .8, .8, .7, .6, .3, .1, .03, 0, 0, 0],
    },
}
# Day types a kind has no own profile for.
_H["airport"]["saturday"] = [v * 1.1 for v in _H["airport"]["weekday"]]
_H["airport"]["sunday"] = [v * 1.1 for v in _H["airport"]["weekday"]]
_H["industrial"]["saturday"] = [v * 0.35 for v in _H["industrial"]["weekday"]]
_H["industrial"]["sunday"] = [v * 0.25 for v in _H["industrial"]["weekday"]]
_H["nature"]["sunday"] = _H["nature"]["saturday"]
# How strongly a kind responds to a Friday/Saturday/holiday-eve night out.
_NIGHT_SENSITIVITY = {"nightlife": 1.6, "cbd": 0.5, "heartland": 0.35, "airport": 0.1, "industrial": 0.1}
_GENERIC = "generic"
DAY_TYPES = ("weekday", "saturday", "sunday")


@lru_cache(maxsize=64)
def kind_profile(kind: str, day_type: str) -> np.ndarray:
    """Relative demand per minute of a local day (1440 values) for a zone kind and day type.

    Hourly anchors are linearly interpolated (circularly) so there are no steps at the top of the hour.
    The airport additionally carries 90-minute flight-bank waves.
    """
    if kind in _H:
        hours = np.asarray(_H[kind][day_type], dtype=float)
    else:  # zones from user data carry no kind: a blend of the urban kinds
        hours = np.mean([np.asarray(_H[k][day_type], dtype=float) for k in ("heartland", "cbd", "nightlife")], 0)
    minutes = np.arange(MINUTES, dtype=float)
    anchors = np.arange(-30.0, MINUTES + 60.0, 60.0)  # mid-hour anchors, wrapping around midnight
    values = np.concatenate([hours[-1:], hours, hours[:1]])
    profile = np.interp(minutes, anchors, values)
    if kind == "airport":
        profile = profile * (1.0 + 0.25 * np.sin(2 * np.pi * minutes / 90.0))
    profile.setflags(write=False)
    return profile


@lru_cache(maxsize=16)
def _sg_holidays(year: int) -> dict[date, str]:
    import holidays

    return dict(holidays.country_holidays("SG", years=year))


def holiday_name(day: date) -> str | None:
    """The Singapore public holiday on ``day`` (local date), or None."""
    return _sg_holidays(day.year).get(day)


def is_holiday_eve(day: date) -> bool:
    """True if the next day is a public holiday (and ``day`` is not itself a Friday/Saturday night out)."""
    return holiday_name(day + timedelta(days=1)) is not None


def day_type(day: date) -> str:
    """``weekday`` | ``saturday`` | ``sunday``; a public holiday counts as a Sunday."""
    if holiday_name(day) is not None or day.weekday() == 6:
        return "sunday"
    return "saturday" if day.weekday() == 5 else "weekday"


def _night_out(day: date) -> bool:
    """Whether the night starting on the evening of ``day`` is a night out (Fri, Sat, holiday eve)."""
    return day.weekday() in (4, 5) or is_holiday_eve(day)


@lru_cache(maxsize=1)
def _night_shape() -> tuple[np.ndarray, np.ndarray]:
    """Late-night lift shape: the evening part (20:00-24:00) and the after-midnight part (00:00-04:00)."""
    m = np.arange(MINUTES, dtype=float)
    evening = np.clip((m - 20 * 60) / 240.0, 0, 1) ** 1.5  # ramps up to midnight
    after = np.clip(1 - (m - 60) / 180.0, 0, 1)  # full until 01:00, gone by 04:00
    after[m < 60] = 1.0
    return evening, after


def _night_lift(day: date, kinds: Sequence[str]) -> np.ndarray:
    """Multiplier (1440, Z) for late-night demand on ``day``: this evening's and last night's."""
    evening, after = _night_shape()
    shape = np.zeros(MINUTES)
    if _night_out(day):
        shape = shape + evening
    if _night_out(day - timedelta(days=1)):
        shape = shape + after
    sens = np.array([_NIGHT_SENSITIVITY.get(k, 0.4) for k in kinds])
    return 1.0 + shape[:, None] * sens[None, :]


def rain_spells(day: date, seed: int = 0) -> list[tuple[int, int, float]]:
    """Rain spells of a local day as ``(start_minute, end_minute, lift)``.

    Singapore rain: most days have none or one spell, thunderstorms favour the afternoon; each lasts 1-3 h
    and lifts demand by 20-50%.
    """
    rng = np.random.default_rng([seed, day.toordinal(), STREAM_RAIN])
    n = int(rng.choice([0, 1, 2], p=[0.45, 0.4, 0.15]))
    spells = []
    for _ in range(n):
        if rng.random() < 0.6:
            start = int(rng.integers(13 * 60, 19 * 60))
        else:
            start = int(rng.integers(0, 22 * 60))
        duration = int(rng.integers(60, 181))
        lift = float(rng.uniform(1.2, 1.5))
        spells.append((start, min(start + duration, MINUTES), lift))
    return spells


def _rain_curve(spells: Sequence[tuple[int, int, float]]) -> np.ndarray:
    """Demand multiplier per minute (1.0 when dry); 15-minute ramps at both ends of a spell."""
    m = np.arange(MINUTES, dtype=float)
    curve = np.ones(MINUTES)
    for start, end, lift in spells:
        ramp = np.clip(np.minimum(m - start, end - m) / 15.0, 0, 1)
        ramp[(m < start) | (m >= end)] = 0.0
        curve = np.maximum(curve, 1.0 + (lift - 1.0) * ramp)
    return curve


def _zone_arrays(zones: Sequence[Zone]) -> tuple[tuple[str, ...], np.ndarray, tuple[str, ...]]:
    codes = tuple(z.zone for z in zones)
    weights = np.array([max(z.weight, 0.0) for z in zones], dtype=float)
    if weights.sum() <= 0:
        raise ValueError("zone weights sum to zero")
    return codes, weights / weights.sum(), tuple(z.kind for z in zones)


@lru_cache(maxsize=32)
def _base_rate(kinds: tuple[str, ...], weights: tuple[float, ...]) -> float:
    """Requests per minute per unit of normalised weight, so an ordinary weekday totals WEEKDAY_TARGET."""
    w = np.asarray(weights)
    per_zone = np.array([kind_profile(k, "weekday").sum() for k in kinds])
    return WEEKDAY_TARGET / float((w * per_zone).sum())


@dataclass(frozen=True)
class DayDemand:
    """One local day of expected demand."""

    day: date
    start_ms: int  # epoch ms (UTC) of local midnight
    zones: tuple[str, ...]
    expected: np.ndarray  # (1440, Z) expected requests per zone-minute, noise and rain included
    rain: np.ndarray  # (1440,) rain multiplier, 1.0 when dry
    day_type: str
    holiday: str | None
    holiday_eve: bool

    @property
    def total(self) -> float:
        return float(self.expected.sum())


def resolve_zones(zones: Sequence[Zone] | None) -> tuple[Zone, ...]:
    """The given zones, or the configured zone list (``settings.zones_file``, default Singapore)."""
    if zones is not None:
        return tuple(zones)
    from ridecast.config import get_settings

    return load_zones(get_settings().zones_file)


def day_demand(
    day: date,
    *,
    seed: int = 0,
    zones: Sequence[Zone] | None = None,
    scale: float = 1.0,
    rain: bool = True,
    noise: bool = True,
    tz: timezone = SGT,
) -> DayDemand:
    """Expected requests per zone-minute for the local day ``day``.

    ``rain=False`` / ``noise=False`` switch those factors off (same seed otherwise), for tests and for
    computing "what the day would have looked like".
    """
    zs = resolve_zones(zones)
    codes, weights, kinds = _zone_arrays(zs)
    dtype = day_type(day)
    base = _base_rate(kinds, tuple(weights.tolist())) * scale
    profiles = np.stack([kind_profile(k, dtype) for k in kinds], axis=1)  # (1440, Z)
    expected = base * weights[None, :] * profiles * _night_lift(day, kinds)
    spells = rain_spells(day, seed)
    rain_curve = _rain_curve(spells) if rain else np.ones(MINUTES)
    expected *= rain_curve[:, None]
    if noise:
        rng = np.random.default_rng([seed, day.toordinal(), STREAM_NOISE])
        z = len(codes)
        level = rng.lognormal(-(_ZONE_DAY_SIGMA**2) / 2, _ZONE_DAY_SIGMA, size=z)
        blocks = rng.lognormal(-(_BLOCK_SIGMA**2) / 2, _BLOCK_SIGMA, size=(MINUTES // _NOISE_BLOCK, z))
        expected *= level[None, :] * np.repeat(blocks, _NOISE_BLOCK, axis=0)
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    expected.setflags(write=False)
    return DayDemand(
        day=day,
        start_ms=int(midnight.timestamp() * 1000),
        zones=codes,
        expected=expected,
        rain=rain_curve,
        day_type=dtype,
        holiday=holiday_name(day),
        holiday_eve=is_holiday_eve(day),
    )


@dataclass(frozen=True)
class DemandFrame:
    """Expected demand on a minute grid over an arbitrary window."""

    minute_ms: np.ndarray  # (T,) epoch ms (UTC) of each minute's start
    zones: tuple[str, ...]
    expected: np.ndarray  # (T, Z)
    rain: np.ndarray  # (T,)


def as_local(ts: datetime, tz: timezone) -> datetime:
    """Naive datetimes are local time of the simulated city."""
    return ts.replace(tzinfo=tz) if ts.tzinfo is None else ts


def local_days(start: datetime, end: datetime, tz: timezone = SGT) -> list[date]:
    """Local dates that overlap ``[start, end)``."""
    first = as_local(start, tz).astimezone(tz).date()
    last = (as_local(end, tz) - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def expected_demand(
    start: datetime,
    duration: timedelta,
    *,
    seed: int = 0,
    zones: Sequence[Zone] | None = None,
    scale: float = 1.0,
    rain: bool = True,
    noise: bool = True,
    tz: timezone = SGT,
) -> DemandFrame:
    """Expected requests per zone-minute for every whole minute starting in ``[start, start + duration)``.

    Naive ``start`` is local time (SGT). 30 days x 55 zones takes about a second.
    """
    zs = resolve_zones(zones)
    start = as_local(start, tz)
    lo = int(start.timestamp() * 1000)
    hi = int((start + duration).timestamp() * 1000)
    parts, rains, minutes = [], [], []
    for d in local_days(start, start + duration, tz):
        dd = day_demand(d, seed=seed, zones=zs, scale=scale, rain=rain, noise=noise, tz=tz)
        ms = dd.start_ms + 60_000 * np.arange(MINUTES, dtype=np.int64)
        keep = (ms + 60_000 > lo) & (ms < hi)
        parts.append(dd.expected[keep])
        rains.append(dd.rain[keep])
        minutes.append(ms[keep])
    return DemandFrame(
        minute_ms=np.concatenate(minutes) if minutes else np.empty(0, np.int64),
        zones=tuple(z.zone for z in zs),
        expected=np.concatenate(parts) if parts else np.empty((0, len(zs))),
        rain=np.concatenate(rains) if rains else np.empty(0),
    )
