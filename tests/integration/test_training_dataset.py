"""The point-in-time training-set builder: labels, features, and no leakage from the future.

Data goes through the real Iceberg tables (pyiceberg, SQLite and PostgreSQL catalogs) via the test fixture
``tests/lake_fixtures.py``, which mirrors the Flink job's silver/gold output contract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ridecast.config import Settings
from tests.lake_fixtures import events_frame, gold_windows, synthetic_events, write_lake
from training.dataset import build_frame, cutoff_grid, feature_columns, lake_from_frames, load_lake

pytestmark = pytest.mark.integration

ZONES = ["A", "B", "C"]
START = "2025-03-03"  # a Monday, UTC


def _settings(home, **training) -> Settings:
    s = Settings(home=home)
    s.training.min_history_days = training.pop("min_history_days", 2)
    for k, v in training.items():
        setattr(s.training, k, v)
    return s


def _gold_lookup(gold: pd.DataFrame, w: int) -> pd.Series:
    g = gold[gold["window_minutes"] == w]
    return g.set_index(["zone", "window_end"])["requests"]


def test_labels_and_window_features_match_gold_on_every_catalog(catalog_settings):
    s = catalog_settings
    s.training.min_history_days = 1
    silver, gold = write_lake(s, synthetic_events(ZONES, START, 3, seed=3))
    lake = load_lake(s)
    assert lake.zones == ZONES
    # complete up to the last closed window, but not past the last request (a replayed history's tail of
    # completions is "no data", not "zero demand")
    last_request = silver.loc[silver["event_type"] == "requested", "event_time"].max()
    gold_end = pd.to_datetime(gold["window_end"], utc=True).max()
    assert lake.watermark == min(gold_end, last_request.floor("5min") + pd.Timedelta(minutes=5)) < gold_end
    for h in (15, 60):
        frame = build_frame(lake, cutoff_grid(lake, s, h), h, s)
        assert len(frame) > 100 and not frame["y"].isna().any()
        g = _gold_lookup(gold, h)
        for row in frame.sample(60, random_state=1).itertuples():
            # label [t, t+h) is the gold h-minute window ending at t+h; absent row = zero demand
            assert row.y == g.get((row.zone, row.cutoff + pd.Timedelta(minutes=h)), 0)
            # the latest window feature is the one that closed exactly at t
            assert getattr(row, f"w{h}_requests_lag0") == g.get((row.zone, row.cutoff), 0)
            assert row.recent_h == g.get((row.zone, row.cutoff), 0)
    # same-slot lags: yesterday's label is today's lag_1d
    f60 = build_frame(lake, cutoff_grid(lake, s, 60), 60, s).set_index(["zone", "cutoff"])
    some = f60.index[-5:]
    for zone, t in some:
        assert f60.loc[(zone, t), "lag_1d"] == f60.loc[(zone, t - pd.Timedelta(days=1)), "y"]


def test_boundaries_are_half_open_like_flink_windows(tmp_path):
    """An event exactly at the cut-off belongs to the label, one a microsecond earlier to the features."""
    t = pd.Timestamp("2025-03-05 10:00", tz="UTC")
    base = pd.Timestamp("2025-03-03 00:00", tz="UTC")
    ev = [
        {"event_id": "bg", "event_time": base, "event_type": "requested", "pickup_zone": "A"},
        {"event_id": "at", "event_time": t, "event_type": "requested", "pickup_zone": "A"},
        {"event_id": "before", "event_time": t - pd.Timedelta(microseconds=1), "event_type": "requested",
         "pickup_zone": "A"},
        {"event_id": "end", "event_time": t + pd.Timedelta(minutes=15), "event_type": "requested", "pickup_zone": "A"},
        {"event_id": "tail", "event_time": t + pd.Timedelta(hours=3), "event_type": "requested", "pickup_zone": "A"},
    ]
    s = _settings(tmp_path / "h", min_history_days=1)
    write_lake(s, ev)
    lake = load_lake(s)
    row = build_frame(lake, pd.DatetimeIndex([t]), 15, s).iloc[0]
    assert row["y"] == 1  # "at" only: "end" is at t+15, outside [t, t+15)
    assert row["recent_h"] == 1 and row["w15_requests_lag0"] == 1  # "before" only


def _perturb_future(silver: pd.DataFrame, T: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Drop half the events at/after T, move others between zones, and add a burst of new ones."""
    rng = np.random.default_rng(seed)
    past, future = silver[silver["event_time"] < T], silver[silver["event_time"] >= T].copy()
    future = future[rng.uniform(size=len(future)) < 0.5]
    future["pickup_zone"] = rng.choice(ZONES, len(future))
    burst = pd.DataFrame(
        {
            "event_id": [f"burst{i}" for i in range(500)],
            "event_time": T + pd.to_timedelta(rng.uniform(0, 6 * 3600, 500), unit="s"),
            "event_type": "requested",
            "pickup_zone": rng.choice(ZONES, 500),
            "surge": 5.0,
            "wait_seconds": 3000.0,
        }
    )
    return events_frame(pd.concat([past, future, burst], ignore_index=True))


def test_no_leakage_features_at_t_ignore_everything_after_t(tmp_path):
    """Perturb every event at or after T in the real tables: features at cut-offs <= T must not change."""
    silver = synthetic_events(ZONES, START, 9, seed=5)
    T = pd.Timestamp("2025-03-10 08:00", tz="UTC")
    s_a = _settings(tmp_path / "a")
    s_b = _settings(tmp_path / "b")
    write_lake(s_a, silver)
    write_lake(s_b, _perturb_future(silver, T, seed=9))
    lake_a, lake_b = load_lake(s_a), load_lake(s_b)
    feats = feature_columns(lake_a.windows)
    for h in (15, 30, 60):
        cut = cutoff_grid(lake_a, s_a, h)
        cut = cut[(cut <= T) & (cut > T - pd.Timedelta(days=3))]
        fa = build_frame(lake_a, cut, h, s_a)
        fb = build_frame(lake_b, cut, h, s_b)
        pd.testing.assert_frame_equal(fa[["zone", "cutoff", *feats]], fb[["zone", "cutoff", *feats]])
        # the perturbation is real: labels that reach past T did change
        reach = (fa["cutoff"] + pd.Timedelta(minutes=h)) > T
        assert (fa.loc[reach, "y"].to_numpy() != fb.loc[reach, "y"].to_numpy()).any()
        assert (fa.loc[~reach, "y"].to_numpy() == fb.loc[~reach, "y"].to_numpy()).all()


def test_leakage_check_detects_a_change_before_t(tmp_path):
    """The same comparison does fail when data before T changes, so the no-leakage test can fail."""
    silver = synthetic_events(ZONES, START, 9, seed=5)
    T = pd.Timestamp("2025-03-10 08:00", tz="UTC")
    earlier = _perturb_future(silver, T - pd.Timedelta(minutes=10), seed=9)
    s = _settings(tmp_path / "x")
    lake_a = lake_from_frames(silver, gold_windows(silver), zones=ZONES)
    lake_b = lake_from_frames(earlier, gold_windows(earlier), zones=ZONES)
    fa = build_frame(lake_a, pd.DatetimeIndex([T]), 60, s)
    fb = build_frame(lake_b, pd.DatetimeIndex([T]), 60, s)
    assert not fa[feature_columns(lake_a.windows)].equals(fb[feature_columns(lake_b.windows)])


@pytest.mark.unit
def test_truncating_the_future_in_memory_keeps_every_feature(tmp_path):
    """Property over many cut-offs: features from a lake cut at T equal those from the full lake."""
    silver = synthetic_events(ZONES, START, 9, seed=11)
    gold = gold_windows(silver)
    s = _settings(tmp_path / "m")
    full = lake_from_frames(silver, gold, zones=ZONES)
    feats = feature_columns(full.windows)
    rng = np.random.default_rng(0)
    grid = cutoff_grid(full, s, 60)
    for T in rng.choice(grid, 5, replace=False):
        T = pd.Timestamp(T)
        cut_silver = silver[silver["event_time"] < T]
        cut_gold = gold[pd.to_datetime(gold["window_end"], utc=True) <= T]
        part = lake_from_frames(cut_silver, cut_gold, watermark=T, zones=ZONES)
        assert part.start == full.start  # same grid origin: the earliest event is before every T
        cuts = grid[grid <= T][-20:]
        a = build_frame(full, cuts, 60, s, with_label=False)[feats]
        b = build_frame(part, cuts, 60, s, with_label=False)[feats]
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.unit
def test_cutoff_grid_needs_history_and_complete_labels(tmp_path):
    silver = synthetic_events(ZONES, START, 4, seed=1)
    s = _settings(tmp_path / "g", min_history_days=2, cutoff_minutes=15)
    lake = lake_from_frames(silver, gold_windows(silver), zones=ZONES)
    cut = cutoff_grid(lake, s, 60)
    assert cut[0] >= lake.start + pd.Timedelta(days=2)
    assert cut[-1] + pd.Timedelta(minutes=60) <= lake.watermark
    assert all(c.minute % 15 == 0 for c in cut)
    s.training.cutoff_minutes = 7
    with pytest.raises(ValueError, match="multiple of the 5-minute slide"):
        cutoff_grid(lake, s, 60)


def test_load_lake_takes_the_slide_from_settings(tmp_path):
    """A lake written by a 1-minute-slide job loads on a 1-minute grid; read as 5-minute it is refused."""
    from training.features import SlideMismatchError

    s = _settings(tmp_path / "one", min_history_days=1)
    s.flink.slide_minutes, s.flink.window_minutes = 1, [5, 15]
    _, gold = write_lake(s, synthetic_events(ZONES, START, 2, seed=8))
    lake = load_lake(s)
    assert lake.slide == pd.Timedelta(minutes=1) and lake.windows == [5, 15]
    t = pd.Timestamp("2025-03-04 18:03", tz="UTC")  # off the 5-minute grid
    row = build_frame(lake, pd.DatetimeIndex([t]), 15, s).set_index("zone").loc["B"]
    g = _gold_lookup(gold, 15)
    assert row["w15_requests_lag0"] == g.get(("B", t), 0) and row["y"] == g.get(("B", t + pd.Timedelta(minutes=15)), 0)
    s.flink.slide_minutes = 5
    with pytest.raises(SlideMismatchError, match="RIDECAST_FLINK__SLIDE_MINUTES"):
        load_lake(s)
