"""Run inside a loopback-only network namespace by tests/integration/test_serve_haproxy.py: start the service as
``ridecast serve`` does (settings from the inherited ``RIDECAST_*``), ask it once through ``serving.port`` and once
on the replica's own port, name the process listening on ``serving.port``, stop it, and print one JSON line."""

from __future__ import annotations

import json

import httpx
import psutil

from ridecast.config import get_settings
from ridecast.stack.serving import replica_urls, start_serving, stop_serving
from tests.netns import only_loopback


def _listener(port: int) -> str | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid).name()
    return None


def main() -> None:
    assert only_loopback(), "not in a loopback-only network namespace"
    s = get_settings()
    report: dict = {}
    try:
        state = start_serving(s)
        r = httpx.get(f"{state.url}/v1/forecast/TAMPINES", params={"horizon": 60}, timeout=30)
        report.update(status=r.status_code, forecasts=r.json().get("forecasts") if r.status_code == 200 else r.text,
                      listener=_listener(s.serving.port), direct=replica_urls(s))
        if report["direct"]:
            d = httpx.get(f"{report['direct'][0]}/v1/forecast/TAMPINES", params={"horizon": 60}, timeout=30)
            (f,) = d.json()["forecasts"]
            report["direct_forecast"] = {k: v for k, v in f.items() if k != "feature_age_s"}
        # what the chart's worker readiness probe reads on serving.port (Serve's proxy said the same)
        report["healthz"] = httpx.get(f"{state.url}/-/healthz", timeout=30).text
        report["unknown_zone_status"] = httpx.get(f"{state.url}/v1/forecast/NOWHERE", params={"horizon": 60},
                                                  timeout=30).status_code
    finally:
        report["stopped"] = stop_serving(s)
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
