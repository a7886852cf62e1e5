"""The feature definition moved to ``training/features.py`` without changing a single training row.

The digests below were recorded from the code *before* the split (commit 6218785, ``training/dataset.py`` with the
features inline) on a fixed synthetic lake: every zone, cut-off, feature and label, for three horizons. Any change to
a value, a column, its order or a row's order changes the digest.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from ridecast.config import Settings, get_settings
from tests.lake_fixtures import gold_windows, synthetic_events
from training.dataset import build_frame, cutoff_grid, lake_from_frames
from training.features import SlideMismatchError

ZONES = ["A", "B", "C"]
# recorded with the pre-split code (see the module docstring)
PRE_SPLIT_DIGESTS = {
    15: "ec44f76d5bf3f8e9dd3cca247d1915fbdc470c894284d65aa986bec164b0175c",
    30: "57eb269c8bcda1d5a1a97e5508d3ad3515943714c67c177eb65b08ee83608ae9",
    60: "fa07764e55ec32abda278c053759a0bec1e2f488c95883ffa0ba1289dc6f088e",
}


def frame_digest(frame: pd.DataFrame) -> str:
    """Column names, zones, cut-offs and every value as float64 bytes (NaN canonical): order-sensitive."""
    h = hashlib.sha256()
    h.update(",".join(frame.columns).encode())
    h.update("\x00".join(frame["zone"].astype(str)).encode())
    h.update(frame["cutoff"].astype("int64").to_numpy().tobytes())
    values = frame.drop(columns=["zone", "cutoff"]).to_numpy(np.float64)
    values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
    h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def _frames(tmp_path) -> dict[int, pd.DataFrame]:
    s = Settings(home=tmp_path)
    s.training.min_history_days = 2
    silver = synthetic_events(ZONES, "2025-03-03", 9, seed=5)
    lake = lake_from_frames(silver, gold_windows(silver), zones=ZONES)
    return {h: build_frame(lake, cutoff_grid(lake, s, h), h, s) for h in (15, 30, 60)}


@pytest.mark.parametrize("horizon", [15, 30, 60])
def test_training_rows_are_identical_to_the_pre_split_code(tmp_path, horizon):
    frame = _frames(tmp_path)[horizon]
    assert len(frame) > 1000
    assert frame_digest(frame) == PRE_SPLIT_DIGESTS[horizon]


def _one_minute_lake() -> tuple[pd.DataFrame, pd.DataFrame]:
    silver = synthetic_events(ZONES, "2025-03-03", 3, seed=2)
    return silver, gold_windows(silver, window_minutes=(5, 15), slide_minutes=1)


def test_a_finer_lake_than_the_configured_slide_is_refused_not_merged():
    """A 1-minute-slide lake read with the 5-minute default: windows ending at 10:01..10:04 would land in the
    10:00 bucket and overwrite each other; the reader says what is wrong instead."""
    silver, gold = _one_minute_lake()
    with pytest.raises(SlideMismatchError, match=r"off the 5-minute slide grid.*RIDECAST_FLINK__SLIDE_MINUTES"):
        lake_from_frames(silver, gold, zones=ZONES, slide_minutes=5)


def test_a_one_minute_lake_is_bucketed_per_minute(tmp_path, monkeypatch):
    silver, gold = _one_minute_lake()
    monkeypatch.setenv("RIDECAST_FLINK__SLIDE_MINUTES", "1")
    get_settings.cache_clear()
    try:
        lake = lake_from_frames(silver, gold, zones=ZONES)  # the slide comes from settings
    finally:
        get_settings.cache_clear()
    assert lake.slide == pd.Timedelta(minutes=1) and lake.windows == [5, 15]
    s = Settings(home=tmp_path)
    t = pd.DatetimeIndex([pd.Timestamp("2025-03-05 10:03", tz="UTC"), pd.Timestamp("2025-03-05 17:58", tz="UTC")])
    frame = build_frame(lake, t, 15, s).set_index(["zone", "cutoff"])
    reqs = gold.set_index(["zone", "window_minutes", "window_end"])["requests"]
    times = silver.loc[silver["event_type"] == "requested"]
    for (zone, cut), row in frame.iterrows():
        for w in (5, 15):
            for k in range(4):  # window ending at t - k*W: off the 5-minute grid, each its own value
                end = cut - k * pd.Timedelta(minutes=w)
                assert row[f"w{w}_requests_lag{k}"] == reqs.get((zone, w, end), 0)
        mine = times[times["pickup_zone"] == zone]["event_time"]
        assert row["recent_h"] == ((mine >= cut - pd.Timedelta(minutes=15)) & (mine < cut)).sum()
        assert row["y"] == ((mine >= cut) & (mine < cut + pd.Timedelta(minutes=15))).sum()
    with pytest.raises(ValueError, match="horizon 0 days 00:00:30 is not a multiple of the 1-minute slide"):
        build_frame(lake, t, 0.5, s)
