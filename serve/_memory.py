"""The in-process store: one ring of slide-sized slots per (zone, window size), numpy all the way.

A slot holds the window ending at ``slot * slide`` modulo the ring, with its end kept beside it, so an old window
in a reused slot can never be mistaken for a newer one and retention is the ring's length (no trimming job).
Dense arrays instead of a dict of rows: a month of 5-minute windows for 55 zones is ~1M rows, which as Python
objects would cost hundreds of MB in every replica.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from serve._rows import COLUMNS, WindowRow, check_rows, history_span_ms

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["MemoryStore"]


class MemoryStore:
    name = "memory"

    def __init__(self, settings: "Settings") -> None:
        self.slide_ms = settings.flink.slide_minutes * 60_000
        self.windows = list(settings.flink.window_minutes)
        self.capacity = history_span_ms(settings) // self.slide_ms + 1
        self._rings: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._since: int | None = None
        self._watermark: int | None = None
        self._revision = 0
        self._lock = threading.Lock()

    def _ring(self, zone: str, w: int) -> tuple[np.ndarray, np.ndarray]:
        ring = self._rings.get((zone, w))
        if ring is None:
            ring = (np.full(self.capacity, -1, dtype=np.int64), np.full((self.capacity, len(COLUMNS)), np.nan))
            self._rings[(zone, w)] = ring
        return ring

    def upsert(self, rows: Sequence[WindowRow]) -> int:
        check_rows(rows, self.slide_ms // 60_000, self.windows)
        new = 0
        with self._lock:
            self._revision += len(rows) > 0
            for r in rows:
                ends, vals = self._ring(r.zone, r.window_minutes)
                slot = (r.window_end_ms // self.slide_ms) % self.capacity
                held = ends[slot]
                if held > r.window_end_ms:
                    continue  # older than the ring keeps: outside the history the features read
                if held != r.window_end_ms:
                    new += 1
                ends[slot] = r.window_end_ms
                vals[slot] = r.values  # a repeated key: the same window again (at-least-once), stored once
                start = r.window_start_ms
                self._since = start if self._since is None else min(self._since, start)
                end = r.window_end_ms
                self._watermark = end if self._watermark is None else max(self._watermark, end)
        return new

    def bounds(self) -> tuple[int | None, int | None]:
        with self._lock:
            return self._since, self._watermark

    def revision(self) -> int:
        return self._revision

    def zones(self) -> list[str]:
        with self._lock:
            return sorted({z for z, _ in self._rings})

    def read(self, zones: Sequence[str], wanted: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        out = {}
        with self._lock:
            for w, want in wanted.items():
                want = np.asarray(want, dtype=np.int64)
                arr = np.full((len(zones), len(want), len(COLUMNS)), np.nan)
                slots = (want // self.slide_ms) % self.capacity
                for zi, zone in enumerate(zones):
                    ring = self._rings.get((zone, w))
                    if ring is None:
                        continue
                    hit = ring[0][slots] == want
                    arr[zi, hit] = ring[1][slots[hit]]
                out[w] = arr
        return out

    def latest(self, zone: str) -> dict[int, WindowRow]:
        out = {}
        with self._lock:
            for w in self.windows:
                ring = self._rings.get((zone, w))
                if ring is None:
                    continue
                i = int(np.argmax(ring[0]))
                if ring[0][i] >= 0:
                    out[w] = WindowRow(zone, w, int(ring[0][i]), tuple(ring[1][i].tolist()))
        return out

    def clear(self) -> None:
        with self._lock:
            self._rings.clear()
            self._since = self._watermark = None
            self._revision += 1  # never back to a number a reader cached against

    def close(self) -> None:
        pass
