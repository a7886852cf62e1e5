"""Metrics on hand-computed numbers, and the baselines against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ridecast.config import Settings
from tests.lake_fixtures import gold_windows, synthetic_events
from training.baselines import baseline_predictions, hour_of_week_mean
from training.dataset import build_frame, cutoff_grid, lake_from_frames
from training.metrics import breakdown, mae, mase, rmse, score, wape
from training.registry import decide

pytestmark = pytest.mark.unit


def test_metrics_on_hand_numbers():
    y = np.array([10.0, 0.0, 5.0, 5.0])
    p = np.array([8.0, 1.0, 5.0, 9.0])
    assert mae(y, p) == pytest.approx((2 + 1 + 0 + 4) / 4)
    assert rmse(y, p) == pytest.approx(math.sqrt((4 + 1 + 0 + 16) / 4))
    assert wape(y, p) == pytest.approx(7 / 20)
    naive = np.array([5.0, 5.0, 5.0, 5.0])  # errors 5, 5, 0, 0: MAE 10/4
    assert mase(y, p, naive) == pytest.approx((7 / 4) / (10 / 4))
    assert mase(y, naive, naive) == pytest.approx(1.0)
    # NaN rows (e.g. no seasonal history) are left out, not counted as zero
    assert wape([1.0, np.nan], [2.0, 100.0]) == pytest.approx(1.0)
    assert math.isnan(wape([0.0, 0.0], [1.0, 1.0]))
    assert score(y, p, naive)["n"] == 4


def test_breakdown_groups_and_models():
    bt = pd.DataFrame(
        {"zone": ["a", "a", "b", "b"], "y": [10.0, 10.0, 4.0, 0.0], "model": [9.0, 11.0, 4.0, 1.0],
         "seasonal_naive": [5.0, 5.0, 0.0, 0.0]}
    )
    out = breakdown(bt, ["model", "seasonal_naive"], ["zone"])
    got = out.set_index(["zone", "model"])["wape"]
    assert got[("a", "model")] == pytest.approx(0.1)
    assert got[("b", "model")] == pytest.approx(0.25)
    assert got[("a", "seasonal_naive")] == pytest.approx(0.5)
    overall = breakdown(bt, ["model"], None)
    assert overall["wape"].iloc[0] == pytest.approx(3 / 24)


def test_hour_of_week_mean_fits_on_train_rows_with_fallbacks():
    train = pd.DataFrame({"zone": ["a", "a", "a", "b"], "hour_of_week": [10.25, 10.75, 11.0, 10.0],
                          "y": [2.0, 4.0, 100.0, 7.0]})
    test = pd.DataFrame({"zone": ["a", "a", "b", "c"], "hour_of_week": [10.5, 50.0, 10.9, 10.0]})
    pred = hour_of_week_mean(train, test)
    assert pred[0] == pytest.approx(3.0)  # slot (a, 10)
    assert pred[1] == pytest.approx(106 / 3)  # unseen slot: zone mean
    assert pred[2] == pytest.approx(7.0)
    assert pred[3] == pytest.approx(113 / 4)  # unseen zone: global mean


def test_seasonal_naive_and_persistence_are_last_week_and_last_window(tmp_path):
    silver = synthetic_events(["A", "B"], "2025-03-03", 10, seed=2)
    s = Settings(home=tmp_path / "h")
    s.training.min_history_days = 1
    lake = lake_from_frames(silver, gold_windows(silver))
    for h in (15, 60):
        f = build_frame(lake, cutoff_grid(lake, s, h), h, s).set_index(["zone", "cutoff"])
        bl = baseline_predictions(f.reset_index(), f.reset_index())
        bl.index = f.index
        for zone, t in f.index[-40::7]:
            assert bl.loc[(zone, t), "seasonal_naive"] == f.loc[(zone, t - pd.Timedelta(days=7)), "y"]
            assert bl.loc[(zone, t), "persistence"] == f.loc[(zone, t - pd.Timedelta(minutes=h)), "y"]


def test_gate_rules():
    ok, why = decide(0.20, "seasonal_naive", 0.25, None)
    assert ok and "no champion" in why
    ok, why = decide(0.26, "hour_of_week_mean", 0.25, None)
    assert not ok and "best baseline hour_of_week_mean" in why
    ok, why = decide(0.20, "seasonal_naive", 0.25, 0.19)
    assert not ok and "champion" in why
    ok, _ = decide(0.20, "seasonal_naive", 0.25, 0.20)
    assert not ok  # a tie keeps the champion
    ok, why = decide(0.20, "seasonal_naive", 0.25, 0.21, wape_new_on_champion_rows=0.18)
    assert ok and "0.1800" in why
    assert not decide(float("nan"), "x", 1.0, None)[0]
