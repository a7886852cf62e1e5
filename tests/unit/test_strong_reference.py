"""The forecast-accuracy benchmark's strong reference (``seasonal_adjusted`` as the forecast) on hand-built data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.forecast_accuracy import parse_as_of, strong_reference, strong_reference_score
from ridecast.config import Settings
from training.dataset import build_frame, lake_from_frames

pytestmark = pytest.mark.unit

T = pd.Timestamp("2024-03-04 12:00", tz="UTC")  # the cut-off
H = pd.Timedelta(hours=1)
W = pd.Timedelta(days=7)


def _events(extra: list[pd.Timestamp] = ()) -> pd.DataFrame:
    times = [T - pd.Timedelta(days=29)]  # history starts before the 4-week lookback
    for n, (same_slot, slot_before) in enumerate([(2, 1), (4, 1), (6, 3), (8, 3)], start=1):
        times += [T - n * W + pd.Timedelta(minutes=10)] * same_slot  # [t - n w, t - n w + h)
        times += [T - n * W - pd.Timedelta(minutes=30)] * slot_before  # [t - n w - h, t - n w)
    times += [T - pd.Timedelta(minutes=20)] * 5  # last hour [t - h, t)
    times += [T + pd.Timedelta(minutes=15)] * 8  # label [t, t + h)
    times += [T + 2 * H]  # data continues past the label window
    times += list(extra)
    return pd.DataFrame({"event_time": pd.to_datetime(times, utc=True), "event_type": "requested", "pickup_zone": "a"})


def _frame(events: pd.DataFrame) -> pd.DataFrame:
    s = Settings()
    s.training.timezone = "UTC"
    lake = lake_from_frames(events, pd.DataFrame())
    return build_frame(lake, pd.DatetimeIndex([T]), 60, s)


def test_strong_reference_is_the_weekly_shape_scaled_to_the_current_level():
    f = _frame(_events())
    # 4-week same-slot mean (2+4+6+8)/4 = 5; level (last hour 5 + 1) / (4-week mean of the hour before (1+1+3+3)/4 + 1)
    # = 6 / 3 = 2; reference 5 * 2 = 10. Label 8.
    assert f["weekly_mean"].iloc[0] == pytest.approx(5.0)
    assert strong_reference(f) == pytest.approx([10.0])
    assert f["y"].iloc[0] == 8


def test_strong_reference_ignores_everything_from_the_cut_off_on():
    later = [T, T + pd.Timedelta(minutes=1), T + pd.Timedelta(minutes=59)] * 30
    f = _frame(_events(later))
    assert f["y"].iloc[0] == 8 + 90  # the label saw them
    assert strong_reference(f) == pytest.approx([10.0])  # the reference did not


def test_strong_reference_score_and_gain_on_the_same_rows():
    bt = pd.DataFrame({"y": [8.0, 2.0, 5.0], "model": [9.0, 2.0, 5.0], "seasonal_naive": [4.0, 4.0, 4.0]})
    X = pd.DataFrame({"seasonal_adjusted": [10.0, 4.0, np.nan]})
    r = strong_reference_score(bt, X)
    assert r["name"] == "seasonal_adjusted"
    assert r["metrics"]["n"] == 2  # the row it cannot score is left out, for the model too
    assert r["metrics"]["wape"] == pytest.approx((2 + 2) / 10)
    assert r["gain"] == pytest.approx(1 - (1 / 10) / (4 / 10))  # model WAPE 0.1 on those rows
    assert r["own_gain_vs_seasonal_naive"] == pytest.approx(1 - (4 / 10) / (6 / 10))  # seasonal naive WAPE 0.6


def test_parse_as_of_local_dates_and_end():
    got = parse_as_of("2011-06-12, 2011-12-18,end,2011-12-18T06:00+00:00", "America/New_York")
    assert got == [
        pd.Timestamp("2011-06-12 04:00", tz="UTC"),  # EDT
        pd.Timestamp("2011-12-18 05:00", tz="UTC"),  # EST
        None,
        pd.Timestamp("2011-12-18 06:00", tz="UTC"),
    ]
    assert parse_as_of(None, "UTC") == [None]
