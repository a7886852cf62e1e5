"""Ray Serve's HAProxy ingress (``serving.ingress=haproxy``, the chart's ``serving.ingress``) on real Ray Serve, on
this machine's own network: HAProxy answers on ``serving.port`` from the champion, and nothing of the service (Ray,
the replicas, HAProxy's stats and metrics frontends, which Ray renders on every interface) listens beyond
``serving.host`` (:mod:`serve._haproxy` confines them)."""

from __future__ import annotations

import time

import httpx
import pandas as pd
import psutil
import pytest
from mlflow.tracking import MlflowClient

from ridecast.stack.process import free_port
from ridecast.stack.serving import REPLICA_TITLE, replica_urls, serving_process, start_serving, stop_serving
from tests.lake_fixtures import synthetic_events, write_lake
from tests.listeners import beyond_loopback, listening
from tests.streaming import env_settings
from training.backtest import run_backtest_and_fit
from training.dataset import load_lake
from training.registry import CHAMPION, model_name, register_run

pytestmark = pytest.mark.integration

ZONES = ["BEDOK", "TAMPINES"]
HORIZONS = [15, 30, 60]


@pytest.fixture(scope="module")
def champions(tmp_path_factory):
    """A lake ending about now and a champion of every horizon; the service's settings (HAProxy ingress, one
    replica, no feed: the lake's windows are its features)."""
    env = {
        "RIDECAST_HOME": str(tmp_path_factory.mktemp("serve-haproxy")),
        "RIDECAST_TRAINING__BACKTEST_DAYS": "2",
        "RIDECAST_TRAINING__MIN_HISTORY_DAYS": "7",
        "RIDECAST_TRAINING__ACTOR": "test-suite",
        "RIDECAST_SERVING__PORT": str(free_port()),
        "RIDECAST_SERVING__INGRESS": "haproxy",
        # not Ray's 8404 and 9101: what a second service on this machine would set
        "RIDECAST_SERVING__HAPROXY_STATS_PORT": str(free_port()),
        "RIDECAST_SERVING__HAPROXY_METRICS_PORT": str(free_port()),
        "RIDECAST_SERVING__RUN_FEED": "false",
        "RIDECAST_SERVING__MIN_REPLICAS": "1",
        "RIDECAST_SERVING__MAX_REPLICAS": "1",
        "RIDECAST_SERVING__MAX_FEATURE_AGE_S": str(2 * 86400),
        "RIDECAST_SERVING__START_TIMEOUT_S": "420",
    }
    with env_settings(env) as s:
        end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
        write_lake(s, synthetic_events(ZONES, end - pd.Timedelta(days=9), 9, seed=5, base_per_hour=30))
        s.training.num_boost_round = 20
        outcome = run_backtest_and_fit(load_lake(s), s, HORIZONS, backend="local")
        _run, decisions = register_run(s, outcome, plots=False)
        client = MlflowClient(tracking_uri=s.mlflow_tracking_uri)
        for h, d in decisions.items():
            client.set_registered_model_alias(model_name(s, h), CHAMPION, d.version)
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # training's; the service needs none
            mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
            yield s, {h: d.version for h, d in decisions.items()}


def _haproxy_listeners(pid: int, port: int, deadline_s: float = 60.0) -> dict[str, set[tuple[str, int]]]:
    """The listeners once HAProxy's three frontends (service, stats, metrics) are up: Ray restarts HAProxy on
    each route change, and a draining one has closed its sockets."""
    end = time.monotonic() + deadline_s
    while True:
        seen = listening(pid)
        haproxy = seen.get("haproxy", set())
        if (len(haproxy) >= 3 and any(p == port for _a, p in haproxy)) or time.monotonic() > end:
            return seen
        time.sleep(0.5)


def test_haproxy_answers_on_the_service_port_and_listens_on_serving_host_only(champions):
    s, versions = champions
    try:
        state = start_serving(s)
        listeners = _haproxy_listeners(serving_process(s).info()["pid"], s.serving.port)
        # HAProxy, not Serve's Python proxy, listens on serving.port, on serving.host
        assert (s.serving.host, s.serving.port) in listeners.get("haproxy", ()), listeners
        # its stats and metrics frontends too, on the ports of settings
        stats, metrics = s.serving.haproxy_stats_port, s.serving.haproxy_metrics_port
        assert {(s.serving.host, stats), (s.serving.host, metrics)} <= listeners["haproxy"], listeners
        # ... and nothing of the service listens beyond the loopback, but for the one exception Ray Serve 2.60
        # hard-codes (each replica's inter-deployment gRPC server on [::]:0; README, Limitations)
        beyond = beyond_loopback(listeners)
        grpc = beyond.pop(REPLICA_TITLE, [])
        assert len(grpc) <= 1 and all(a == "::" for a, _p in grpc), grpc
        assert not beyond, f"listening beyond {s.serving.host}: {beyond}"
        # the replica and its HAProxy run at serving.worker_niceness, not Ray's 15 for workers
        nice = {p.name(): p.nice() for p in psutil.Process(serving_process(s).info()["pid"]).children(recursive=True)
                if p.name() == "haproxy" or p.name().startswith(REPLICA_TITLE)}
        assert "haproxy" in nice and len(nice) == 2 and set(nice.values()) == {s.serving.worker_niceness}, nice
        r = httpx.get(f"{state.url}/v1/forecast/TAMPINES", params={"horizon": 60}, timeout=30)
        assert r.status_code == 200, r.text
        (f,) = r.json()["forecasts"]
        assert f["zone"] == "TAMPINES" and f["model_version"] == versions[60] and f["source"] == "model", f
        # the same answer as the replica's own port gives (HAProxy routes there), the feature age aside
        (direct,) = replica_urls(s)
        (d,) = httpx.get(f"{direct}/v1/forecast/TAMPINES", params={"horizon": 60}, timeout=30).json()["forecasts"]
        assert {k: v for k, v in d.items() if k != "feature_age_s"} == {k: v for k, v in f.items()
                                                                        if k != "feature_age_s"}
        assert httpx.get(f"{state.url}/v1/forecast/NOWHERE", params={"horizon": 60}, timeout=30).status_code == 404
        # what the chart's worker readiness probe reads on serving.port (Serve's proxy said the same)
        assert "success" in httpx.get(f"{state.url}/-/healthz", timeout=30).text
    finally:
        assert stop_serving(s)
