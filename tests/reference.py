"""The oracle: HOP-window features computed with pandas from the same events, independent of Flink."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from ridecast.events import HEARTBEAT

KEY = ["zone", "window_minutes", "window_end"]


def reference_features(events: Iterable[dict], window_minutes: list[int], slide_minutes: int) -> pd.DataFrame:
    ev = pd.DataFrame([e for e in events if e["event_type"] != HEARTBEAT])
    for col in ("fare", "wait_seconds", "surge"):
        if col not in ev:
            ev[col] = float("nan")
    slide = slide_minutes * 60_000
    frames = []
    for w in window_minutes:
        first_end = (ev["event_time_ms"] // slide + 1) * slide
        for k in range(w // slide_minutes):
            f = ev.assign(window_end_ms=first_end + k * slide, window_minutes=w)
            frames.append(f)
    x = pd.concat(frames, ignore_index=True)
    x["req"] = (x["event_type"] == "requested").astype(int)
    x["done"] = (x["event_type"] == "completed").astype(int)
    x["cxl"] = (x["event_type"] == "cancelled").astype(int)
    g = x.groupby(["pickup_zone", "window_minutes", "window_end_ms"])
    out = pd.DataFrame({
        "requests": g["req"].sum(), "completions": g["done"].sum(), "cancellations": g["cxl"].sum(),
        "fare_sum": g["fare"].sum(min_count=1), "fare_mean": g["fare"].mean(), "fare_max": g["fare"].max(),
        "wait_mean": g["wait_seconds"].mean(), "wait_max": g["wait_seconds"].max(),
        "surge_mean": g["surge"].mean(), "events": g.size(),
    }).reset_index().rename(columns={"pickup_zone": "zone"})
    out["window_end"] = pd.to_datetime(out["window_end_ms"], unit="ms", utc=True)
    return out.drop(columns="window_end_ms").sort_values(KEY).reset_index(drop=True)


def as_frame(arrow_table) -> pd.DataFrame:
    df = arrow_table.to_pandas()
    df["window_end"] = pd.to_datetime(df["window_end"], utc=True)
    df["window_minutes"] = df["window_minutes"].astype(int)
    return df.sort_values(KEY).reset_index(drop=True)


def assert_features_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Counts exactly, float statistics to 1e-9 relative."""
    assert len(actual) == len(expected), f"{len(actual)} windows, expected {len(expected)}"
    assert not actual.duplicated(KEY).any(), "duplicated window keys"
    for col in KEY + ["requests", "completions", "cancellations", "events"]:
        def as_compared(frame: pd.DataFrame, col: str = col) -> pd.Series:
            if col == "zone":
                return frame[col]
            return frame[col].astype(str) if col == "window_end" else frame[col].astype("int64")

        pd.testing.assert_series_equal(as_compared(actual), as_compared(expected), check_names=False)
    for col in ["fare_sum", "fare_mean", "fare_max", "wait_mean", "wait_max", "surge_mean"]:
        pd.testing.assert_series_equal(actual[col].astype(float), expected[col].astype(float), check_names=False,
                                       rtol=1e-9)
