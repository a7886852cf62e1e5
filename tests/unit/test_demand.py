"""The demand model: deterministic, calibrated, and shaped like Singapore (properties that can fail)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from ridecast.events import load_zones
from ridecast.sources.demand import (
    SGT,
    day_demand,
    day_type,
    expected_demand,
    holiday_name,
    is_holiday_eve,
    kind_profile,
    rain_spells,
)

pytestmark = pytest.mark.unit

ZONES = load_zones()  # the 55 planning areas shipped with the package
TUESDAY = date(2025, 3, 4)
WEDNESDAY = date(2025, 3, 5)
SATURDAY = date(2025, 3, 8)  # the night of Friday 7 March
LABOUR_DAY = date(2025, 5, 1)  # a Thursday
ORDINARY_THURSDAY = date(2025, 5, 8)


def _kind_mask(kind: str) -> np.ndarray:
    return np.array([z.kind == kind for z in ZONES])


def _hours(dd, kind: str, h0: float, h1: float) -> float:
    """Expected requests of all zones of a kind between local hours h0 and h1."""
    return float(dd.expected[int(h0 * 60) : int(h1 * 60), _kind_mask(kind)].sum())


def test_same_seed_same_demand_different_seed_different():
    a = day_demand(TUESDAY, seed=7, zones=ZONES)
    b = day_demand(TUESDAY, seed=7, zones=ZONES)
    c = day_demand(TUESDAY, seed=8, zones=ZONES)
    np.testing.assert_array_equal(a.expected, b.expected)
    assert not np.allclose(a.expected, c.expected)


def test_window_reproduces_the_days_it_covers():
    """Any window draws whole days from (seed, day): a 2-day window equals its two days."""
    frame = expected_demand(datetime(2025, 3, 4), timedelta(days=2), seed=3, zones=ZONES)
    days = np.concatenate([day_demand(d, seed=3, zones=ZONES).expected for d in (TUESDAY, WEDNESDAY)])
    np.testing.assert_array_equal(frame.expected, days)
    assert frame.minute_ms[0] == int(datetime(2025, 3, 4, tzinfo=SGT).timestamp() * 1000)
    assert np.all(np.diff(frame.minute_ms) == 60_000)


def test_daily_totals_in_calibrated_range_and_scale():
    totals = [day_demand(TUESDAY + timedelta(days=i), seed=1, zones=ZONES).total for i in range(28)]
    assert all(40_000 <= t <= 60_000 for t in totals), totals
    doubled = day_demand(TUESDAY, seed=1, zones=ZONES, scale=2.0).total
    assert doubled == pytest.approx(2 * totals[0], rel=1e-9)


def test_weekday_morning_peak_in_heartlands():
    dd = day_demand(TUESDAY, zones=ZONES)
    assert _hours(dd, "heartland", 8, 9) > 10 * _hours(dd, "heartland", 3, 4)
    # outbound in the morning: heartlands dominate 8-9am, CBD dominates 6-7pm
    assert _hours(dd, "heartland", 8, 9) > 3 * _hours(dd, "cbd", 8, 9)


def test_cbd_peaks_in_the_evening():
    dd = day_demand(TUESDAY, zones=ZONES)
    hourly = [_hours(dd, "cbd", h, h + 1) for h in range(24)]
    assert int(np.argmax(hourly)) in (17, 18, 19)
    assert _hours(dd, "cbd", 18, 19) > 2 * _hours(dd, "cbd", 8, 9)


def test_weekend_late_night_nightlife_beats_weekday():
    sat, wed = day_demand(SATURDAY, zones=ZONES), day_demand(WEDNESDAY, zones=ZONES)
    assert _hours(sat, "nightlife", 0, 3) > 1.8 * _hours(wed, "nightlife", 0, 3)  # Friday night out
    assert _hours(sat, "nightlife", 22, 24) > 1.5 * _hours(wed, "nightlife", 22, 24)  # Saturday night out


def test_public_holiday_looks_like_a_sunday_and_its_eve_has_a_night():
    assert holiday_name(LABOUR_DAY) and holiday_name(ORDINARY_THURSDAY) is None
    assert day_type(LABOUR_DAY) == "sunday" and day_type(ORDINARY_THURSDAY) == "weekday"
    hol, normal = day_demand(LABOUR_DAY, zones=ZONES), day_demand(ORDINARY_THURSDAY, zones=ZONES)
    assert _hours(hol, "heartland", 7, 9) < 0.5 * _hours(normal, "heartland", 7, 9)  # no commute
    assert _hours(hol, "cbd", 17, 20) < 0.5 * _hours(normal, "cbd", 17, 20)
    eve, plain = date(2025, 4, 30), date(2025, 4, 23)  # Wednesdays, the first before Labour Day
    assert is_holiday_eve(eve) and not is_holiday_eve(plain)
    assert _hours(day_demand(eve, zones=ZONES), "nightlife", 22, 24) > 1.4 * _hours(
        day_demand(plain, zones=ZONES), "nightlife", 22, 24
    )


def test_rain_spells_lift_demand_by_their_factor_and_nowhere_else():
    rainy = next(TUESDAY + timedelta(days=i) for i in range(60) if rain_spells(TUESDAY + timedelta(days=i), 0))
    spells = rain_spells(rainy, 0)
    wet = day_demand(rainy, zones=ZONES)
    dry = day_demand(rainy, zones=ZONES, rain=False)
    ratio = wet.expected.sum(axis=1) / dry.expected.sum(axis=1)
    start, end, lift = max(spells, key=lambda s: s[2])
    if end - start > 30:  # full intensity once the 15-minute ramp is over
        assert ratio[start + 15 : end - 15].max() == pytest.approx(lift)
    raining = np.zeros(1440, bool)
    for s, e, _ in spells:
        raining[s:e] = True
    assert np.all(ratio[~raining] == pytest.approx(1.0))
    assert wet.total > dry.total


def test_rain_spells_are_singapore_like():
    spells = [s for i in range(365) for s in rain_spells(date(2025, 1, 1) + timedelta(days=i), 5)]
    rainy_days = sum(bool(rain_spells(date(2025, 1, 1) + timedelta(days=i), 5)) for i in range(365))
    assert 0.35 < rainy_days / 365 < 0.75
    assert all(1.2 <= lift <= 1.5 for _, _, lift in spells)
    assert all(60 <= e - s <= 180 for s, e, _ in spells if e < 1440)
    afternoon = sum(13 * 60 <= s < 19 * 60 for s, _, _ in spells)
    assert afternoon / len(spells) > 0.5  # thunderstorms favour the afternoon


def test_profiles_are_smooth_and_nature_is_quiet():
    for kind in ("heartland", "cbd", "nightlife", "airport", "industrial", "nature", ""):
        p = kind_profile(kind, "weekday")
        assert p.shape == (1440,) and np.all(p >= 0)
        assert np.abs(np.diff(p)).max() < 0.1  # interpolated, no hourly steps
    assert kind_profile("nature", "weekday")[:300].sum() == 0
    dd = day_demand(TUESDAY, zones=ZONES)
    nature = dd.expected[:, _kind_mask("nature")].sum()
    assert nature < 0.01 * dd.total


def test_zones_are_data_weights_drive_shares():
    from ridecast.events import Zone

    zones = [Zone("A", "A", "", "", 3.0, float("nan"), float("nan")), Zone("B", "B", "", "", 1.0, 0, 0)]
    dd = day_demand(TUESDAY, zones=zones, noise=False, rain=False)
    assert dd.zones == ("A", "B")
    assert dd.expected[:, 0].sum() == pytest.approx(3 * dd.expected[:, 1].sum())
    assert dd.total == pytest.approx(50_000)
