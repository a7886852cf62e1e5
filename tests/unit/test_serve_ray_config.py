"""The Ray Serve deployment's options from settings, the serving process's command and client errors, and their
renderings, in process (tests/integration/test_serve_ray.py runs the service for real)."""

from __future__ import annotations

import pytest
from rich.console import Console

from ridecast.config import Settings
from ridecast.stack.lifecycle import ServeResult
from ridecast.stack.process import free_port
from ridecast.stack.serving import REPLICA_TITLE, ServingNotRunningError, request_forecast, serving_command
from ridecast.views import forecast_table, serve_text
from serve.__main__ import local_ray_cpus
from serve._deployment import (
    APP_NAME,
    DEPLOYMENT_NAME,
    autoscaling_config,
    build_app,
    deployment_options,
    ray_serve_env,
)
from serve._telemetry import metrics_env


def _text(renderable: object) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_ray_serve_switches_come_from_settings(tmp_path, monkeypatch):
    s = Settings(home=tmp_path)
    assert ray_serve_env(s) == {"RAY_SERVE_ENABLE_HA_PROXY": "1",
                                "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
                                "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": "30000",
                                "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": "31000",
                                "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
                                "RAY_worker_niceness": "0",
                                "RAY_SERVE_HAPROXY_STATS_PORT": "8404",
                                "RAY_SERVE_HAPROXY_METRICS_PORT": "9101",
                                "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1",
                                "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
                                "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}
    monkeypatch.setenv("RIDECAST_SERVING__INGRESS", "proxy")  # HAProxy routes to the replicas' own ports
    monkeypatch.setenv("RIDECAST_SERVING__DIRECT_INGRESS", "false")
    monkeypatch.setenv("RIDECAST_SERVING__DIRECT_INGRESS_PORTS", "[20000, 20010]")
    monkeypatch.setenv("RIDECAST_SERVING__FREEZE_HEAP", "false")
    monkeypatch.setenv("RIDECAST_SERVING__MAIN_LOOP", "false")
    monkeypatch.setenv("RIDECAST_SERVING__HAPROXY_STATS_PORT", "18404")
    monkeypatch.setenv("RIDECAST_SERVING__HAPROXY_METRICS_PORT", "19101")
    env = ray_serve_env(Settings(home=tmp_path))
    assert (env["RAY_SERVE_HAPROXY_STATS_PORT"], env["RAY_SERVE_HAPROXY_METRICS_PORT"]) == ("18404", "19101")
    assert env["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == env["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "1"
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "0" and env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] == "20010"
    assert env["RAY_SERVE_FREEZE_GC_ON_STARTUP"] == "0" and env["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    with pytest.raises(ValueError, match="direct_ingress_ports"):
        Settings(home=tmp_path, serving={"direct_ingress_ports": (31000, 30000)})


def test_the_haproxy_ingress_needs_direct_ingress(tmp_path):
    env = ray_serve_env(Settings(home=tmp_path, serving={"ingress": "haproxy"}))
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert ray_serve_env(Settings(home=tmp_path, serving={"ingress": "proxy"}))["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    with pytest.raises(ValueError, match="needs direct_ingress on"):
        Settings(home=tmp_path, serving={"ingress": "haproxy", "direct_ingress": False})
    with pytest.raises(ValueError, match="ingress"):
        Settings(home=tmp_path, serving={"ingress": "nginx"})


def test_deployment_options_come_from_settings(tmp_path):
    s = Settings(home=tmp_path)
    s.serving.min_replicas, s.serving.max_replicas, s.serving.initial_replicas = 1, 3, 2
    s.serving.target_ongoing_requests, s.serving.max_ongoing_requests = 6.0, 24
    s.serving.upscale_delay_s, s.serving.downscale_delay_s = 3.0, 30.0
    s.serving.metrics_interval_s, s.serving.look_back_period_s = 1.0, 5.0
    s.serving.replica_num_cpus, s.serving.max_batch_size, s.serving.batch_wait_timeout_s = 0.25, 8, 0.002
    assert autoscaling_config(s) == {
        "min_replicas": 1, "max_replicas": 3, "initial_replicas": 2, "target_ongoing_requests": 6.0,
        "upscale_delay_s": 3.0, "downscale_delay_s": 30.0, "metrics_interval_s": 1.0, "look_back_period_s": 5.0}
    opts = deployment_options(s)
    assert opts["max_ongoing_requests"] == 24 and opts["ray_actor_options"]["num_cpus"] == 0.25
    # replicas write their metrics where /metrics of any replica reads them
    env = opts["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env == {**metrics_env(s), "MLFLOW_TRACKING_URI": s.mlflow_tracking_uri,
                   "MLFLOW_REGISTRY_URI": s.mlflow_tracking_uri}
    assert opts["user_config"] == {"max_batch_size": 8, "batch_wait_timeout_s": 0.002}
    s.serving.initial_replicas = None
    assert "initial_replicas" not in autoscaling_config(s)  # Serve then starts at min_replicas

    # Serve validates the options when binding; the application carries them and absolute paths
    assert build_app(s) is not None
    # Serve's application builder form (the chart's import_path): the config's args dict, over RIDECAST_*
    for args in ({}, {"serving": {"max_batch_size": 4}}):
        assert build_app(args) is not None
    assert local_ray_cpus(s) == max(s.training.ray_num_cpus, 3 * 0.25)
    s.serving.max_replicas, s.serving.replica_num_cpus = 8, 1.0
    assert local_ray_cpus(s) == 8.0


def test_replica_title_names_the_deployment():
    # the stack cannot import serve: its copy of the names must match the deployment's
    assert REPLICA_TITLE == f"ray::ServeReplica:{APP_NAME}:{DEPLOYMENT_NAME}"


def test_serving_command_is_the_serve_module():
    assert serving_command()[1:] == ["-m", "serve"]
    assert serving_command(plain=True)[1:] == ["-m", "serve", "--plain"]


def test_forecast_without_a_service_says_how_to_start_it(tmp_path):
    s = Settings(home=tmp_path)
    s.serving.port = free_port()  # nothing listens there
    with pytest.raises(ServingNotRunningError, match="ridecast serve"):
        request_forecast(s, "TAMPINES", 60, timeout=5)


def test_serve_text_and_forecast_table():
    text = _text(serve_text(ServeResult("http://127.0.0.1:8000", "ray", 42, "{}"), "BEDOK"))
    assert "http://127.0.0.1:8000 (Ray Serve, pid 42)" in text
    assert "curl 'http://127.0.0.1:8000/v1/forecast/BEDOK?horizon=60'" in text and "ridecast down" in text
    assert "past Serve's ingress" not in text
    text = _text(serve_text(ServeResult("http://127.0.0.1:8000", "ray", 42, "{}",
                                        ("http://127.0.0.1:30000", "http://127.0.0.1:30001")), "BEDOK"))
    assert "past Serve's ingress: http://127.0.0.1:30000, http://127.0.0.1:30001" in text
    rows = [
        {"zone": "BEDOK", "horizon_min": 60, "predicted_requests": 12.34, "target_start": "2026-12-02T04:00:00Z",
         "target_end": "2026-12-02T05:00:00Z", "feature_age_s": 42.0, "stale": False, "source": "model",
         "model_name": "ridecast-demand-h60", "model_version": 3, "fallback_reason": None},
        {"zone": "BEDOK", "horizon_min": 15, "predicted_requests": 2.0, "target_start": "2026-12-02T04:00:00Z",
         "target_end": "2026-12-02T04:15:00Z", "feature_age_s": 4000.0, "stale": True, "source": "seasonal_naive",
         "model_name": "ridecast-demand-h15", "model_version": 1, "fallback_reason": "stale features"},
    ]
    text = _text(forecast_table(rows, "http://x"))
    assert "12.3" in text and "ridecast-demand-h60 v3" in text and "42 s" in text and "04:00–05:00" in text
    assert "4000 s (stale)" in text and "seasonal_naive (stale features)" in text
