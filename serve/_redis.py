"""The shared store: Redis, so every Serve replica on Kubernetes reads the windows one feed wrote.

Layout under ``serving.key_prefix`` (``P``):

* ``P:w:{W}:{day}``: a hash per window size and UTC day of the window end; field = ``{zone}:{end in epoch ms}``,
  value = the window's ``COLUMNS`` as little-endian float64. ``HSET`` on an existing field is the dedupe (the
  same window again, stored once) and its reply tells new from repeated. Each day's key expires after the history
  span plus a day, which is the retention: no trimming job. Zones share the day's hash, so a lookup is one
  ``HMGET`` per window size and day it touches, however many zones it asks for (the batch endpoint's case).
* ``P:bounds``: a sorted set whose ``watermark`` / ``since`` members move only forward / backward
  (``ZADD GT`` / ``ZADD LT``), so concurrent writers cannot move the feature time back.
* ``P:latest:{zone}``: per window size, the newest end (``ZADD GT``); ``P:zones``: every zone seen.

A lookup is two round trips (bounds, then one pipeline of ``HMGET``), whatever the number of windows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from serve._errors import StoreConfigError, StoreUnavailableError
from serve._rows import COLUMNS, WindowRow, check_rows, history_span_ms

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["RedisStore"]

_DAY_MS = 86_400_000
_VALUE = np.dtype(("<f8", len(COLUMNS)))


class RedisStore:
    name = "redis"

    def __init__(self, settings: "Settings") -> None:
        import redis

        url = settings.serving.redis_url
        if not url:
            raise StoreConfigError(
                "serving.backend is redis but serving.redis_url is unset: set RIDECAST_SERVING__REDIS_URL"
            )
        self._errors = (redis.ConnectionError, redis.TimeoutError)
        self.url = url
        self._r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = settings.serving.key_prefix
        self.slide_ms = settings.flink.slide_minutes * 60_000
        self.windows = list(settings.flink.window_minutes)
        self.ttl_s = history_span_ms(settings) // 1000 + 86_400

    def _hkey(self, w: int, end_ms: int) -> str:
        return f"{self.prefix}:w:{w}:{end_ms // _DAY_MS}"

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis at {self.url} did not answer: {exc}") from exc

    def upsert(self, rows: Sequence[WindowRow]) -> int:
        check_rows(rows, self.slide_ms // 60_000, self.windows)
        if not rows:
            return 0
        by_key: dict[str, dict[str, bytes]] = defaultdict(dict)
        latest: dict[str, dict[str, int]] = defaultdict(dict)
        for r in rows:
            # a key twice in one batch is the same window twice: the dict keeps it once
            by_key[self._hkey(r.window_minutes, r.window_end_ms)][f"{r.zone}:{r.window_end_ms}"] = np.asarray(
                r.values, dtype="<f8"
            ).tobytes()
            mine = latest[r.zone]
            mine[str(r.window_minutes)] = max(mine.get(str(r.window_minutes), 0), r.window_end_ms)
        pipe = self._r.pipeline(transaction=False)
        for key, fields in by_key.items():  # one HSET per day-hash: a bootstrap is thousands of commands, not 1M
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl_s)
        for zone, ends in latest.items():
            pipe.zadd(f"{self.prefix}:latest:{zone}", ends, gt=True)
        pipe.sadd(f"{self.prefix}:zones", *latest)
        pipe.zadd(f"{self.prefix}:bounds", {"watermark": max(r.window_end_ms for r in rows)}, gt=True)
        pipe.zadd(f"{self.prefix}:bounds", {"since": min(r.window_start_ms for r in rows)}, lt=True)
        pipe.zincrby(f"{self.prefix}:bounds", 1, "revision")  # every replica's cache key (see revision())
        replies = self._call(pipe.execute)
        return sum(int(n) for n in replies[0 : 2 * len(by_key) : 2])  # HSET replies: fields that were new

    def bounds(self) -> tuple[int | None, int | None]:
        pairs = dict(self._call(self._r.zrange, f"{self.prefix}:bounds", 0, -1, False, True))
        since, wm = pairs.get(b"since"), pairs.get(b"watermark")
        return (None if since is None else int(since)), (None if wm is None else int(wm))

    def revision(self) -> int:
        score = self._call(self._r.zscore, f"{self.prefix}:bounds", "revision")
        return 0 if score is None else int(score)

    def zones(self) -> list[str]:
        return sorted(z.decode() for z in self._call(self._r.smembers, f"{self.prefix}:zones"))

    def read(self, zones: Sequence[str], wanted: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        pipe = self._r.pipeline(transaction=False)
        plan = []  # (w, positions in want) per HMGET, in pipeline order; fields are zone-major
        out = {}
        for w, want in wanted.items():
            want = np.asarray(want, dtype=np.int64)
            out[w] = np.full((len(zones), len(want), len(COLUMNS)), np.nan)
            days = want // _DAY_MS
            for d in np.unique(days):
                pos = np.flatnonzero(days == d)
                pipe.hmget(f"{self.prefix}:w:{w}:{d}", [f"{z}:{e}" for z in zones for e in want[pos]])
                plan.append((w, pos))
        replies = self._call(pipe.execute) if plan else []
        for (w, pos), values in zip(plan, replies):
            hit = [i for i, v in enumerate(values) if v is not None]
            if hit:
                zi, pi = np.divmod(np.asarray(hit), len(pos))
                out[w][zi, pos[pi]] = np.frombuffer(b"".join(values[i] for i in hit), dtype=_VALUE)
        return out

    def latest(self, zone: str) -> dict[int, WindowRow]:
        ends = self._call(self._r.zrange, f"{self.prefix}:latest:{zone}", 0, -1, False, True)
        wanted = {int(w): np.array([int(e)]) for w, e in ends}
        data = self.read([zone], wanted)
        return {w: WindowRow(zone, w, int(wanted[w][0]), tuple(data[w][0, 0].tolist())) for w in wanted}

    def clear(self) -> None:
        revision = self.revision()
        keys = self._call(lambda: list(self._r.scan_iter(f"{self.prefix}:*", count=1000)))
        for i in range(0, len(keys), 500):
            self._call(self._r.delete, *keys[i : i + 500])
        # the revision survives: never back to a number a reader cached against
        self._call(self._r.zadd, f"{self.prefix}:bounds", {"revision": revision + 1})

    def close(self) -> None:
        self._r.close()
