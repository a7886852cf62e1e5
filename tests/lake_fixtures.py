"""TEST FIXTURE: write silver and gold rows straight into the real Iceberg tables, without Kafka or Flink.

This mirrors the *output contract* of the Flink feature job (``silver.trip_events`` and ``gold.zone_features``,
see ``iceberg_catalog/tables.py``) so the forecasting code can be developed and tested before, and independently
of, the streaming pipeline:

* silver: one row per valid event, as given;
* gold: HOP windows of ``window_minutes`` sliding every ``slide_minutes``; the window ``[end - W, end)`` holds the
  events with ``end - W <= event_time < end`` (Flink's half-open windows); a window with no event has NO row.
  ``requests`` / ``completions`` / ``cancellations`` count event types, ``events`` counts all, ``fare_*``,
  ``wait_*`` and ``surge_mean`` aggregate the non-null values of the window's events.

It is not the pipeline: ``ridecast.stack.pipeline.backfill`` is. It also holds :func:`synthetic_events`, a small
seasonal Poisson demand generator for tests (the real simulator is ``ridecast.sources.simulate``).
"""

from __future__ import annotations

import json
import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from iceberg_catalog.catalog import load_table, open_catalog
from ridecast.config import Settings

__all__ = ["events_frame", "gold_windows", "online_message", "synthetic_events", "write_lake"]

_SILVER_COLS = ["event_id", "event_time", "event_type", "pickup_zone", "dropoff_zone", "fare", "wait_seconds", "surge"]


def events_frame(events: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Events (``make_event`` dicts or a frame with silver columns) as a silver-shaped frame (UTC times)."""
    if isinstance(events, pd.DataFrame):
        df = events.copy()
    else:
        df = pd.DataFrame(list(events))
    if "event_time" not in df.columns:
        df["event_time"] = pd.to_datetime(df["event_time_ms"], unit="ms", utc=True)
    df["event_time"] = pd.to_datetime(df["event_time"], utc=True).astype("datetime64[us, UTC]")
    for c in _SILVER_COLS:
        if c not in df.columns:
            df[c] = None
    df = df[df["event_type"] != "heartbeat"]
    return df[_SILVER_COLS].reset_index(drop=True)


def gold_windows(silver: pd.DataFrame, window_minutes: Iterable[int] = (15, 60),
                 slide_minutes: int = 5) -> pd.DataFrame:
    """HOP-window rows exactly as the Flink job defines them (see module docstring), computed with pandas."""
    df = silver
    if df.empty:
        return pd.DataFrame()
    slide = pd.Timedelta(minutes=slide_minutes)
    bucket = df["event_time"].dt.floor(slide)
    g = pd.DataFrame(
        {
            "zone": df["pickup_zone"].to_numpy(),
            "bucket": bucket.to_numpy(),
            "req": (df["event_type"] == "requested").to_numpy(int),
            "comp": (df["event_type"] == "completed").to_numpy(int),
            "canc": (df["event_type"] == "cancelled").to_numpy(int),
            "ev": 1,
            "fare": pd.to_numeric(df["fare"]).to_numpy(float),
            "wait": pd.to_numeric(df["wait_seconds"]).to_numpy(float),
            "surge": pd.to_numeric(df["surge"]).to_numpy(float),
        }
    )
    for c in ("fare", "wait", "surge"):
        g[c + "_n"] = g[c].notna().astype(int)
    agg = g.groupby(["zone", "bucket"]).agg(
        req=("req", "sum"), comp=("comp", "sum"), canc=("canc", "sum"), ev=("ev", "sum"),
        fare_sum=("fare", "sum"), fare_n=("fare_n", "sum"), fare_max=("fare", "max"),
        wait_sum=("wait", "sum"), wait_n=("wait_n", "sum"), wait_max=("wait", "max"),
        surge_sum=("surge", "sum"), surge_n=("surge_n", "sum"),
    )
    out = []
    t0, t1 = agg.index.get_level_values("bucket").min(), agg.index.get_level_values("bucket").max()
    grid = pd.date_range(t0, t1, freq=slide)
    for zone, part in agg.groupby(level="zone"):
        part = part.droplevel("zone").reindex(grid)
        for w in window_minutes:
            k = w // slide_minutes
            # a window ending at bucket b + slide covers buckets b-k+1 .. b
            # windows ending after the last bucket (up to t1 + w) still hold its events
            tail = pd.date_range(t1 + slide, t1 + pd.Timedelta(minutes=w) - slide, freq=slide)
            r = part.reindex(grid.append(tail)).rolling(k, min_periods=1)
            sums = r[["req", "comp", "canc", "ev", "fare_sum", "fare_n", "wait_sum", "wait_n", "surge_sum",
                      "surge_n"]].sum()
            maxes = r[["fare_max", "wait_max"]].max()
            ends = sums.index + slide
            frame = pd.DataFrame(
                {
                    "zone": zone,
                    "window_minutes": w,
                    "window_start": ends - pd.Timedelta(minutes=w),
                    "window_end": ends,
                    "requests": sums["req"].to_numpy(),
                    "completions": sums["comp"].to_numpy(),
                    "cancellations": sums["canc"].to_numpy(),
                    "fare_sum": np.where(sums["fare_n"] > 0, sums["fare_sum"], np.nan),
                    "fare_mean": sums["fare_sum"] / sums["fare_n"].where(sums["fare_n"] > 0),
                    "fare_max": maxes["fare_max"].to_numpy(),
                    "wait_mean": sums["wait_sum"] / sums["wait_n"].where(sums["wait_n"] > 0),
                    "wait_max": maxes["wait_max"].to_numpy(),
                    "surge_mean": sums["surge_sum"] / sums["surge_n"].where(sums["surge_n"] > 0),
                    "events": sums["ev"].to_numpy(),
                }
            )
            out.append(frame[frame["events"] > 0])
    gold = pd.concat(out, ignore_index=True)
    for c in ("requests", "completions", "cancellations", "events"):
        gold[c] = gold[c].astype("int64")
    for c in ("window_start", "window_end"):
        gold[c] = pd.to_datetime(gold[c], utc=True).astype("datetime64[us, UTC]")
    gold["computed_at"] = gold["window_end"]
    return gold


def online_message(row: Mapping) -> bytes:
    """A gold row as the job's online topic carries it (``flink_jobs.sql``: the gold columns, Flink's json format
    with ISO-8601 timestamps in UTC, null for a missing mean)."""
    def ts(v) -> str:
        return pd.Timestamp(v).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")

    out = {}
    for k in ("zone", "window_minutes", "window_start", "window_end", "requests", "completions", "cancellations",
              "fare_sum", "fare_mean", "fare_max", "wait_mean", "wait_max", "surge_mean", "events", "computed_at"):
        v = row[k]
        if k in ("window_start", "window_end", "computed_at"):
            out[k] = ts(v)
        elif k == "zone":
            out[k] = str(v)
        elif k in ("window_minutes", "requests", "completions", "cancellations", "events"):
            out[k] = int(v)
        else:
            out[k] = None if v is None or math.isnan(float(v)) else float(v)
    return json.dumps(out).encode()


def _append(settings: Settings, identifier: str, df: pd.DataFrame) -> None:
    table = load_table(open_catalog(settings), identifier)
    schema = table.schema().as_arrow()
    df = df.reindex(columns=[f.name for f in schema])
    arrow = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    table.append(arrow)


def write_lake(
    settings: Settings, events: Iterable[Mapping] | pd.DataFrame, until: str | pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Append the events to silver and their HOP windows to gold; returns (silver, gold) as written.

    ``until``: the lake of a live stream at that instant (events before it, windows closed by it), instead of a
    replay that ran to its end (whose last windows close up to an hour after the last request)."""
    silver = events_frame(events)
    if until is not None:
        silver = silver[silver["event_time"] < pd.Timestamp(until)].reset_index(drop=True)
    silver["source"] = "fixture"
    silver["source_offset"] = np.arange(len(silver), dtype="int64")
    silver["received_at"] = silver["event_time"]
    silver["is_late"] = 0
    silver["is_late"] = silver["is_late"].astype("int32")
    gold = gold_windows(silver, settings.flink.window_minutes, settings.flink.slide_minutes)
    if until is not None and not gold.empty:
        gold = gold[gold["window_end"] <= pd.Timestamp(until)].reset_index(drop=True)
    _append(settings, "silver.trip_events", silver)
    if not gold.empty:
        _append(settings, "gold.zone_features", gold)
    return silver, gold


def synthetic_events(
    zones: list[str],
    start: str | pd.Timestamp,
    days: int,
    *,
    seed: int = 0,
    base_per_hour: float = 20.0,
) -> pd.DataFrame:
    """Seasonal Poisson demand (daily + weekly profile, per-zone scale, day-level shocks), silver-shaped.

    Completions follow 80% of requests a few minutes later, cancellations 10%; a test needs nothing fancier.
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tzinfo is None else pd.Timestamp(start)
    minutes = days * 1440
    zone_scale = rng.uniform(0.4, 2.0, len(zones))
    day_shock = rng.lognormal(0.0, 0.15, (len(zones), days + 1))
    local = pd.date_range(t0, periods=minutes, freq="min").tz_convert("Asia/Singapore")
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60
    dow = local.dayofweek.to_numpy()
    daily = 0.3 + np.exp(-((hour - 8.5) ** 2) / 3) * 1.6 + np.exp(-((hour - 18.5) ** 2) / 4) * 1.9
    weekly = np.where(dow >= 5, 0.8, 1.0) * np.where(dow == 4, 1.15, 1.0)
    day_idx = (np.arange(minutes) // 1440)
    rows = []
    for zi, zone in enumerate(zones):
        lam = base_per_hour / 60 * zone_scale[zi] * daily * weekly * day_shock[zi, day_idx]
        n = rng.poisson(lam)
        minute_idx = np.repeat(np.arange(minutes), n)
        times = t0 + pd.to_timedelta(minute_idx * 60 + rng.uniform(0, 60, len(minute_idx)), unit="s")
        k = len(times)
        kind = rng.uniform(size=k)
        req = pd.DataFrame({"event_time": times, "event_type": "requested", "pickup_zone": zone,
                            "wait_seconds": rng.uniform(30, 600, k), "surge": 1.0 + rng.uniform(0, 0.5, k)})
        done = kind < 0.8
        comp = pd.DataFrame({"event_time": times[done] + pd.to_timedelta(rng.uniform(300, 1500, done.sum()), unit="s"),
                             "event_type": "completed", "pickup_zone": zone, "fare": rng.uniform(8, 40, done.sum())})
        canc_m = kind > 0.9
        canc_delay = pd.to_timedelta(rng.uniform(30, 300, canc_m.sum()), unit="s")
        canc = pd.DataFrame({"event_time": times[canc_m] + canc_delay,
                             "event_type": "cancelled", "pickup_zone": zone})
        rows += [req, comp, canc]
    df = pd.concat(rows, ignore_index=True)
    df = df[df["event_time"] < t0 + pd.Timedelta(days=days)].sort_values("event_time", kind="stable")
    df["event_id"] = [f"e{seed}-{i}" for i in range(len(df))]
    df["dropoff_zone"] = None
    return events_frame(df)
