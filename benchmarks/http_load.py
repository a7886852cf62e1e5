"""A bounded HTTP load generator, run as its own process so the client does not share the server's interpreter.

    .venv/bin/python -m benchmarks.http_load --url http://127.0.0.1:8000/v1/forecast/ORCHARD?horizon=60 \
        --concurrency 8 --requests 2000 [--body '{"horizons":[15,30,60]}']

``concurrency`` workers each send requests back to back (closed loop) until ``requests`` were sent or
``max_seconds`` passed; prints one JSON object: per-request latencies (ms), failures by status or exception kind,
and the wall time. The same client, concurrency and request count go to every server a benchmark compares, so
client overhead cancels out of the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter


async def _run(url: str, body: str | None, concurrency: int, requests: int, max_seconds: float,
               headers: dict[str, str], warmup: int) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    sent = 0
    deadline = 0.0

    async with httpx.AsyncClient(limits=limits, timeout=30.0, headers=headers) as client:
        async def one() -> None:
            t0 = time.perf_counter()
            try:
                if body is None:
                    r = await client.get(url)
                else:
                    r = await client.post(url, content=body, headers={"content-type": "application/json"})
                ok = r.status_code == 200
                kind = f"http_{r.status_code}"
            except httpx.HTTPError as exc:
                ok, kind = False, type(exc).__name__
            if ok:
                latencies.append((time.perf_counter() - t0) * 1000.0)
            else:
                failures[kind] += 1

        for _ in range(warmup):  # connections open, server caches warm; not measured
            await one()
        latencies.clear()
        failures.clear()

        async def worker() -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                await one()

        start = time.perf_counter()
        deadline = start + max_seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"latencies_ms": latencies, "failures": dict(failures), "wall_s": wall, "sent": sent,
            "concurrency": concurrency}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--body")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--header", action="append", default=[], help="Name: value")
    a = ap.parse_args()
    headers = dict(h.split(": ", 1) for h in a.header)
    out = asyncio.run(_run(a.url, a.body, a.concurrency, a.requests, a.max_seconds, headers, a.warmup))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
