"""Window rows as the feature job emits them, and the history the online features need.

The online topic carries the gold table's rows (``flink_jobs.sql.FEATURE_COLUMNS``) as JSON with ISO-8601
timestamps; the Iceberg bootstrap reads the same columns from ``gold.zone_features``. Both become
:class:`WindowRow`, keyed by ``(zone, window_minutes, window_end)``: the topic is at-least-once, so a key seen twice
is one window, stored once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pandas as pd

from serve._errors import MalformedWindowError
from training.features import GOLD_COLUMNS, HISTORY, SlideMismatchError

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["COLUMNS", "WindowRow", "check_rows", "history_span_ms", "parse_message", "rows_from_frame"]

COLUMNS = GOLD_COLUMNS  # the stored values of a window, in this order
_MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class WindowRow:
    zone: str
    window_minutes: int
    window_end_ms: int
    values: tuple[float, ...]  # COLUMNS, NaN for a null mean

    @property
    def key(self) -> tuple[str, int, int]:
        return self.zone, self.window_minutes, self.window_end_ms

    @property
    def window_start_ms(self) -> int:
        return self.window_end_ms - self.window_minutes * _MINUTE_MS

    @property
    def window_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.window_end_ms, unit="ms", tz="UTC")

    def value(self, column: str) -> float:
        return self.values[COLUMNS.index(column)]


def _ms(text: object, field: str) -> int:
    if not isinstance(text, str):
        raise MalformedWindowError(f"{field} must be an ISO-8601 string, got {text!r}")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedWindowError(f"{field} is not an ISO-8601 timestamp: {text!r}") from exc
    if ts.tzinfo is None:
        raise MalformedWindowError(f"{field} has no time zone: {text!r}")
    return round(ts.timestamp() * 1000)


def _number(v: object, field: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MalformedWindowError(f"{field} must be a number or null, got {v!r}")
    return float(v)


def parse_message(raw: bytes | str) -> WindowRow:
    """One message of the online topic as a row; :class:`MalformedWindowError` says what is wrong with it."""
    try:
        msg = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise MalformedWindowError(f"not JSON: {str(raw)[:80]!r}") from exc
    if not isinstance(msg, dict):
        raise MalformedWindowError(f"not a JSON object: {str(raw)[:80]!r}")
    missing = [k for k in ("zone", "window_minutes", "window_start", "window_end", *COLUMNS) if k not in msg]
    if missing:
        raise MalformedWindowError(f"missing field(s) {', '.join(missing)}")
    zone, w = msg["zone"], msg["window_minutes"]
    if not isinstance(zone, str) or not zone:
        raise MalformedWindowError(f"zone must be a non-empty string, got {zone!r}")
    if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
        raise MalformedWindowError(f"window_minutes must be a positive integer, got {w!r}")
    start, end = _ms(msg["window_start"], "window_start"), _ms(msg["window_end"], "window_end")
    if end - start != w * _MINUTE_MS:
        raise MalformedWindowError(f"window {msg['window_start']}..{msg['window_end']} is not {w} minutes long")
    return WindowRow(zone, w, end, tuple(_number(msg[c], c) for c in COLUMNS))


def rows_from_frame(gold: pd.DataFrame) -> list[WindowRow]:
    """``gold.zone_features`` rows (as read by pyiceberg) as window rows."""
    if gold.empty:
        return []
    ends = pd.to_datetime(gold["window_end"], utc=True).astype("datetime64[ms, UTC]").astype("int64").to_numpy()
    values = gold[list(COLUMNS)].apply(pd.to_numeric).to_numpy(np.float64)
    return [
        WindowRow(z, int(w), int(e), tuple(v.tolist()))
        for z, w, e, v in zip(gold["zone"].to_numpy(), gold["window_minutes"].to_numpy(), ends, values)
    ]


def check_rows(rows: Iterable[WindowRow], slide_minutes: int, windows: Sequence[int]) -> None:
    """Refuse rows a store would file wrongly: off the slide grid or of a window size the settings do not have."""
    slide_ms = slide_minutes * _MINUTE_MS
    for r in rows:
        if r.window_end_ms % slide_ms:
            raise SlideMismatchError(pd.Timedelta(minutes=slide_minutes), r.window_end, "the features topic")
        if r.window_minutes not in windows:
            raise MalformedWindowError(
                f"a {r.window_minutes}-minute window, but flink.window_minutes is {list(windows)}: the store and "
                "the feature job disagree on the windows"
            )


def history_span_ms(settings: "Settings") -> int:
    """How far back of the newest window a store must keep windows: the 4-weekly lags of the longest horizon,
    plus the longest window (a count interval is tiled by whole windows)."""
    span = HISTORY + pd.Timedelta(minutes=max(settings.training.horizons) + max(settings.flink.window_minutes))
    return int(span / pd.Timedelta(milliseconds=1))
