"""The plain serving app (``serve.plain_app``) over real HTTP with the real ForecastService: a real Iceberg lake
(SQLite catalog, synthetic demand ending today), real MLflow champions trained on it (single-process backend, as
tests/integration/test_promotion.py), the in-process online store bootstrapped from the lake. No broker: the feed
is off, the store holds what the lake has.

Checks: a forecast for every zone and horizon from the champion, with its version and feature time; the zone list
and history; and schemathesis against /openapi.json finds no 5xx (bounded examples: a shared 2-core machine).
"""

from __future__ import annotations

import pandas as pd
import pytest
import schemathesis
from mlflow.tracking import MlflowClient

from ridecast.config import Settings
from serve._plain import plain_app
from tests.lake_fixtures import synthetic_events, write_lake
from tests.openapi_fuzz import MODES, fuzz_openapi
from tests.served import Served
from training.backtest import run_backtest_and_fit
from training.dataset import load_lake
from training.registry import CHAMPION, model_name, register_run

pytestmark = pytest.mark.integration

ZONES = ["BEDOK", "ORCHARD", "TAMPINES", "WOODLANDS"]
DAYS = 11


@pytest.fixture(scope="module")
def served_settings(tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("serve-http")
    s = Settings(
        home=home,
        serving={
            "run_feed": False,  # no broker here: the store holds the lake's windows
            # the lake ends at midnight UTC today: its features are hours old, count them as fresh for the model path
            "max_feature_age_s": 2 * 86_400,
            "trace_file": home / "traces.jsonl",
            "metrics_dir": home / "metrics",
        },
    )
    s.training.backtest_days = 2
    s.training.min_history_days = 7
    s.training.actor = "test-suite"
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=DAYS)
    write_lake(s, synthetic_events(ZONES, start, DAYS, seed=11, base_per_hour=30))
    outcome = run_backtest_and_fit(load_lake(s), s, list(s.training.horizons), backend="local")
    register_run(s, outcome, plots=False)
    return s


@pytest.fixture(scope="module")
def client(served_settings):
    # the lifespan starts the ForecastService (store bootstrap, champions) before uvicorn serves
    with Served(plain_app(served_settings), start_timeout_s=600) as c:
        yield c


def test_ready_and_forecasts_for_every_zone_and_horizon(client, served_settings):
    s = served_settings
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    mlflow = MlflowClient(tracking_uri=s.mlflow_tracking_uri)
    champions = {h: int(mlflow.get_model_version_by_alias(model_name(s, h), CHAMPION).version)
                 for h in s.training.horizons}
    assert ready.json()["models"] == {str(h): v for h, v in champions.items()}

    r = client.post("/v1/forecast", json={})
    assert r.status_code == 200, r.text
    got = r.json()["forecasts"]
    assert sorted((f["zone"], f["horizon_min"]) for f in got) == sorted(
        (z, h) for z in ZONES for h in s.training.horizons
    )
    feature_time = pd.Timestamp(ready.json()["feature_time"])
    for f in got:
        assert f["source"] == "model" and f["fallback_reason"] is None, f
        assert f["model_name"] == model_name(s, f["horizon_min"])
        assert f["model_version"] == champions[f["horizon_min"]]
        assert pd.Timestamp(f["feature_time"]) == feature_time and f["stale"] is False
        assert f["predicted_requests"] >= 0
    for zone in ZONES:
        one = client.get(f"/v1/forecast/{zone}", params={"horizon": 60})
        assert one.status_code == 200, one.text
        (f,) = one.json()["forecasts"]
        same = next(g for g in got if g["zone"] == zone and g["horizon_min"] == 60)
        assert f["predicted_requests"] == pytest.approx(same["predicted_requests"])


def test_zones_history_and_errors(client, served_settings):
    z = client.get("/v1/zones").json()
    assert sorted(z["zones"]) == ZONES
    h = client.get("/v1/zones/ORCHARD/history", params={"hours": 24})
    assert h.status_code == 200, h.text
    assert h.json()["actuals"], "the last day of the lake is within 24 hours"
    assert client.get("/v1/forecast/ATLANTIS").json()["error"] == "unknown_zone"
    assert client.get("/v1/forecast/BEDOK", params={"horizon": 45}).status_code == 422


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_schemathesis_finds_no_server_error(client, mode):
    """Every operation of /openapi.json, valid (positive) and invalid (negative) requests: never a 5xx."""
    result = fuzz_openapi(str(client.base_url), mode)
    assert result.operations == 7
    assert not result.server_errors, "\n".join(result.server_errors[:10])
    # positive: all 7; negative: at least the three with inputs (forecast by zone, batch forecast, history)
    assert len(result.exercised) >= (7 if mode == schemathesis.GenerationMode.POSITIVE else 3), result.exercised
