"""Ray Serve's HAProxy ingress (``serving.ingress=haproxy``, the chart's ``serving.ingress``) on real Ray Serve.

Ray 2.60's HAProxy binds its stats and metrics ports, and makes the replicas bind theirs, on every interface. So
the service runs here as it would in a pod: in a network namespace of its own with only the loopback device up
(``unshare --net``), where nothing it binds is reachable from outside. The probe (:mod:`tests.haproxy_probe`) runs
in that namespace, starts the service as ``ridecast serve`` does, and reports what answered on ``serving.port``.
On this machine's own network the same settings are refused before anything listens."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ridecast.stack.process import free_port
from ridecast.stack.serving import ServingNotReadyError, start_serving, stop_serving
from tests.lake_fixtures import synthetic_events, write_lake
from tests.netns import in_loopback_only_namespace, only_loopback
from tests.streaming import env_settings
from training.backtest import run_backtest_and_fit
from training.dataset import load_lake
from training.registry import CHAMPION, model_name, register_run

pytestmark = pytest.mark.integration

ZONES = ["BEDOK", "TAMPINES"]
HORIZONS = [15, 30, 60]


def _isolated(argv: list[str]) -> list[str]:
    """``argv`` in a loopback-only network namespace, or skip where this machine cannot make one (no
    ``unshare``/``ip``, or no permission)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("needs unshare (util-linux) and ip (iproute2) for a loopback-only network namespace")
    probe = subprocess.run(in_loopback_only_namespace([sys.executable, "-m", "tests.netns"]), capture_output=True,
                           text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a loopback-only network namespace here: {probe.stderr.strip() or probe.stdout}")
    return in_loopback_only_namespace(argv)


@pytest.fixture(scope="module")
def champions(tmp_path_factory):
    """A lake ending about now and a champion of every horizon; the service's settings (HAProxy ingress, one
    replica, no feed: nothing outside the namespace is reachable from it)."""
    env = {
        "RIDECAST_HOME": str(tmp_path_factory.mktemp("serve-haproxy")),
        "RIDECAST_TRAINING__BACKTEST_DAYS": "2",
        "RIDECAST_TRAINING__MIN_HISTORY_DAYS": "7",
        "RIDECAST_TRAINING__ACTOR": "test-suite",
        "RIDECAST_SERVING__PORT": str(free_port()),
        "RIDECAST_SERVING__INGRESS": "haproxy",
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


def test_haproxy_answers_on_the_service_port_in_a_loopback_only_namespace(champions):
    s, versions = champions
    cmd = _isolated([sys.executable, "-m", "tests.haproxy_probe"])
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"probe failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout.strip().splitlines()[-1])
    # HAProxy, not Serve's Python proxy, listens on serving.port; it answers from the champion
    assert report["listener"] == "haproxy", report
    assert report["status"] == 200, report
    (f,) = report["forecasts"]
    assert f["zone"] == "TAMPINES" and f["model_version"] == versions[60] and f["source"] == "model", f
    # the same answer as the replica's own port gives (HAProxy routes there), the feature age aside
    assert report["direct"] and report["direct_forecast"] == {k: v for k, v in f.items() if k != "feature_age_s"}
    assert report["unknown_zone_status"] == 404, report
    assert "success" in report["healthz"], report  # the chart's Ray worker readiness probe greps for it
    assert report["stopped"], report


def test_haproxy_is_refused_on_a_network_with_other_interfaces(champions):
    s, _versions = champions
    if only_loopback():
        pytest.skip("this machine's network is loopback-only: HAProxy would be allowed here")
    try:
        with pytest.raises(ServingNotReadyError, match=r"refused: serving.ingress=haproxy binds ports on every"):
            start_serving(s, timeout=120)
    finally:
        stop_serving(s)
