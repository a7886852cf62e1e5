"""End to end on real Ray (one local instance for the module), real MLflow, real Iceberg:
train with Ray Train's XGBoostTrainer -> register -> forecast-batch -> gold.forecasts -> gold.forecast_accuracy,
and determinism of the distributed fit for a fixed seed and worker count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import training
from ridecast.config import Settings
from tests.lake_fixtures import synthetic_events, write_lake
from training.dataset import build_frame, cutoff_grid, feature_columns, load_lake
from training.lake_io import read_table
from training.trainer import FitTask, ensure_ray, fit_tasks, shutdown_ray

pytestmark = pytest.mark.integration

ZONES = ["A", "B", "C", "D"]


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    st = Settings(home=tmp_path_factory.mktemp("e2e"))
    t = st.training
    t.horizons, t.workers, t.ray_num_cpus = [15, 60], 2, 2
    t.backtest_days, t.min_history_days, t.num_boost_round = 2, 7, 40  # 2 days: a stable comparison
    t.xgb_params = {"eta": 0.2, "max_depth": 4}
    t.actor = "e2e"
    write_lake(st, synthetic_events(ZONES, "2025-03-03", 10, seed=21, base_per_hour=40))
    ensure_ray(st)
    yield st
    shutdown_ray()


RUNS: dict[str, object] = {}


def test_train_register_forecast_and_score(s):
    result = training.train(s)
    RUNS["train"] = result
    assert set(result.decisions) == {15, 60}
    for h, d in result.decisions.items():
        ms = result.metrics[h]
        assert d.promoted, d.reason  # first versions: beat the best baseline on this seasonal data
        assert ms["model"]["wape"] < min(ms[b]["wape"] for b in ("seasonal_naive", "persistence", "hour_of_week_mean"))
    assert result.timings["fit_s"] > 0 and "ray_start_s" in result.timings
    assert (s.ml_dir / "last_backtest.parquet").exists()

    lake = load_lake(s)
    fr = training.forecast_batch(s)
    assert fr.feature_time == lake.watermark
    assert fr.rows == len(ZONES) * 2
    assert fr.versions == {15: result.decisions[15].version, 60: result.decisions[60].version}
    again = training.forecast_batch(s)  # same cut-off: replaced, not duplicated
    fc = read_table(s, "gold.forecasts")
    assert len(fc) == len(ZONES) * 2 and again.rows == len(ZONES) * 2
    assert (fc["predicted_requests"] >= 0).all()
    assert set(fc["target_end"] - fc["feature_time"]) == {pd.Timedelta(minutes=15), pd.Timedelta(minutes=60)}

    # a batch two hours back: its target windows have closed, so the accuracy join has actuals
    past = lake.watermark - pd.Timedelta(hours=2)
    fp = training.forecast_batch(s, at=past)
    assert fp.accuracy_rows == len(ZONES) * 2
    acc = read_table(s, "gold.forecast_accuracy")
    assert len(acc) == len(ZONES) * 2 and set(acc["feature_time"]) == {past}
    truth = build_frame(lake, pd.DatetimeIndex([past]), 60, s).set_index("zone")["y"]
    a60 = acc[acc["horizon_min"] == 60].set_index("zone")
    for z in ZONES:
        assert a60.loc[z, "actual_requests"] == truth[z]
        assert a60.loc[z, "abs_error"] == pytest.approx(abs(a60.loc[z, "predicted_requests"] - truth[z]))

    report = training.write_report(s)
    html = report.read_text()
    assert "Backtest: WAPE per horizon" in html and "data:image/png;base64," in html
    assert (report.parent / "error_by_hour.png").exists()


def test_distributed_fit_is_deterministic_for_fixed_seed_and_workers(s):
    """Re-fit the 60-minute final model in a second, separate XGBoostTrainer run: bit-identical model.

    (One extra run, not two: the first is the ``train`` above, whose final task is rebuilt here exactly as
    ``run_backtest_and_fit`` builds it: every label-complete cut-off, same params, seed and worker count.)
    """
    first = RUNS.get("train")
    if first is None:
        pytest.skip("needs test_train_register_forecast_and_score in the same session")
    lake = load_lake(s)
    frame = build_frame(lake, cutoff_grid(lake, s, 60), 60, s)
    frame = frame[frame["y"].notna()]
    feats = feature_columns(lake.windows)
    X, y = frame[feats].to_numpy(np.float32), frame["y"].to_numpy(np.float32)
    again = fit_tasks([FitTask("h60/final", X, y, X, keep_model=True)], feats, s, workers=2)
    before = first.outcome.horizons[60].booster
    assert again.models["h60/final"].save_raw("json") == before.save_raw("json")
    assert np.array_equal(again.predictions["h60/final"], before.inplace_predict(X))
