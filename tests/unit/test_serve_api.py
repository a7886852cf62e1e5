"""The HTTP layer of serving (``serve._api``), over real HTTP: uvicorn on a free 127.0.0.1 port in a thread, httpx.

This is a unit test of the HTTP layer only: the backend is a small in-test object implementing ``ServingBackend``
(fixed forecasts, and a switch that makes it raise each typed error), so status codes, error bodies, limits, the
API key, the OpenAPI document, metrics and traces are checked without a lake or MLflow. The real
``ForecastService`` behind the same app is tests/integration/test_serve_http.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest
from opentelemetry import trace
from pydantic import SecretStr

from ridecast.config import Settings
from serve import _telemetry as telemetry
from serve._api import DirectBackend, create_app
from serve._errors import NoFeaturesError, StoreUnavailableError, UnknownZoneError
from serve._history import ZoneHistory
from serve._service import Forecast, ForecastRequest, Readiness
from tests.served import Served

ZONES = ["ANG_MO_KIO", "BEDOK", "ORCHARD", "TAMPINES"]
NOW = pd.Timestamp("2026-01-05T05:00:00Z")
SECRET_MARKER = "do-not-leak-this-internal-detail"


@dataclass
class TableBackend:
    """Answers from fixed numbers; ``mode`` makes every call raise one kind of failure."""

    horizons: tuple[int, ...]
    mode: str = "ok"  # ok | no_features | store_down | boom | not_ready
    seen: list = field(default_factory=list)  # (request, trace id) per forecast call

    def _fail(self) -> None:
        if self.mode == "no_features":
            raise NoFeaturesError("the online store holds no window yet")
        if self.mode == "store_down":
            raise StoreUnavailableError("redis at 127.0.0.1:1 did not answer")
        if self.mode == "boom":
            raise RuntimeError(SECRET_MARKER)

    async def forecast(self, request: ForecastRequest) -> list[Forecast]:
        self.seen.append((request, trace.get_current_span().get_span_context().trace_id))
        self._fail()
        zones = list(request.zones) if request.zones is not None else ZONES
        unknown = [z for z in zones if z not in ZONES]
        with telemetry.span("feature_lookup", zones=len(zones)):
            if unknown:
                raise UnknownZoneError(unknown)
        with telemetry.span("inference", horizons=len(request.horizons)):
            return [
                Forecast(
                    zone=z, horizon_min=h, predicted_requests=10.0 + h, target_start=NOW,
                    target_end=NOW + pd.Timedelta(minutes=h), feature_time=NOW, feature_age_s=12.5, stale=False,
                    source="model" if h != 15 else "seasonal_naive", model_name=f"demand-h{h}",
                    model_version=None if h == 15 else 3,
                    fallback_reason="no champion loaded" if h == 15 else None,
                )
                for z in zones
                for h in request.horizons
            ]

    async def zones(self) -> list[str]:
        self._fail()
        return list(ZONES)

    async def readiness(self) -> Readiness:
        self._fail()
        if self.mode == "not_ready":
            return Readiness(False, {h: None for h in self.horizons}, None, ["no champion for horizon 60"])
        return Readiness(True, {h: 3 for h in self.horizons}, NOW)

    async def history(self, zone: str, hours: int) -> ZoneHistory:
        self._fail()
        if zone not in ZONES:
            raise UnknownZoneError([zone])
        ends = pd.date_range(NOW - pd.Timedelta(minutes=15), NOW, freq="5min")
        actuals = pd.DataFrame({"window_end": ends, "window_minutes": 5, "requests": [3, 4, 5, 6]})
        forecasts = pd.DataFrame({
            "feature_time": [NOW - pd.Timedelta(hours=1)], "horizon_min": [60],
            "target_start": [NOW - pd.Timedelta(hours=1)], "target_end": [NOW], "predicted_requests": [17.5],
            "model_version": [float("nan")],  # a seasonal-naive row: no model
        })
        return ZoneHistory(zone, NOW - pd.Timedelta(hours=hours), NOW, actuals, forecasts)


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("serve-api")
    s = Settings(home=home, serving={"trace_file": home / "traces.jsonl", "metrics_dir": home / "metrics"})
    telemetry.reset_metrics_dir(s)
    # process-wide: the first configure of the session chooses (another module's may have run first), so the
    # tests read the destinations from telemetry.configured(), not from these settings
    telemetry.configure(s, service_name="ridecast-serve-test")
    return s


@pytest.fixture(scope="module")
def backend(api_settings) -> TableBackend:
    return TableBackend(tuple(api_settings.training.horizons))


@pytest.fixture(scope="module")
def client(api_settings, backend):
    app = create_app(api_settings)
    app.state.backend = backend
    with Served(app) as c:
        yield c


@pytest.fixture
def ok(backend):
    backend.mode = "ok"
    yield backend
    backend.mode = "ok"


def _error(r: httpx.Response, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == kind, body
    return body


# --- forecasts -------------------------------------------------------------------------------------------------

FORECAST_FIELDS = {
    "zone", "horizon_min", "predicted_requests", "target_start", "target_end", "feature_time", "feature_age_s",
    "stale", "source", "model_name", "model_version", "fallback_reason",
}


def test_single_zone_answers_every_horizon_and_names_model_and_freshness(client, ok, api_settings):
    r = client.get("/v1/forecast/TAMPINES")
    assert r.status_code == 200, r.text
    got = r.json()["forecasts"]
    assert [f["horizon_min"] for f in got] == list(api_settings.training.horizons)
    for f in got:
        assert set(f) == FORECAST_FIELDS
        assert f["zone"] == "TAMPINES" and f["feature_age_s"] == 12.5 and f["stale"] is False
        assert pd.Timestamp(f["feature_time"]) == NOW
    naive = next(f for f in got if f["horizon_min"] == 15)
    assert naive["source"] == "seasonal_naive" and naive["fallback_reason"] and naive["model_version"] is None
    model = next(f for f in got if f["horizon_min"] == 60)
    assert model["source"] == "model" and model["model_name"] == "demand-h60" and model["model_version"] == 3

    one = client.get("/v1/forecast/TAMPINES", params={"horizon": 60}).json()["forecasts"]
    assert [(f["zone"], f["horizon_min"]) for f in one] == [("TAMPINES", 60)]


def test_batch_forecast_zones_by_horizons_and_all_zones(client, ok):
    r = client.post("/v1/forecast", json={"zones": ["BEDOK", "ORCHARD", "BEDOK"], "horizons": [15, 60]})
    assert r.status_code == 200, r.text
    assert [(f["zone"], f["horizon_min"]) for f in r.json()["forecasts"]] == [
        ("BEDOK", 15), ("BEDOK", 60), ("ORCHARD", 15), ("ORCHARD", 60)  # duplicates asked once
    ]
    everything = client.post("/v1/forecast", json={"horizons": [30]}).json()["forecasts"]
    assert sorted(f["zone"] for f in everything) == ZONES


def test_zones_and_history(client, ok):
    z = client.get("/v1/zones").json()
    assert z["zones"] == ZONES and pd.Timestamp(z["feature_time"]) == NOW and z["feature_age_s"] > 0
    h = client.get("/v1/zones/ORCHARD/history", params={"hours": 6})
    assert h.status_code == 200, h.text
    body = h.json()
    assert [a["requests"] for a in body["actuals"]] == [3, 4, 5, 6]
    assert body["forecasts"][0]["model_version"] is None and body["forecasts"][0]["predicted_requests"] == 17.5
    assert pd.Timestamp(body["until"]) - pd.Timestamp(body["since"]) == pd.Timedelta(hours=6)


# --- errors ----------------------------------------------------------------------------------------------------


def test_unknown_zone_is_404_naming_it(client, ok):
    assert "ATLANTIS" in _error(client.get("/v1/forecast/ATLANTIS"), 404, "unknown_zone")["detail"]
    _error(client.post("/v1/forecast", json={"zones": ["BEDOK", "ATLANTIS"]}), 404, "unknown_zone")
    _error(client.get("/v1/zones/ATLANTIS/history"), 404, "unknown_zone")
    _error(client.get("/v1/nothing-here"), 404, "not_found")


def test_unknown_horizon_is_422_naming_the_valid_ones(client, ok, api_settings):
    detail = _error(client.get("/v1/forecast/BEDOK", params={"horizon": 45}), 422, "unknown_horizon")["detail"]
    assert "45" in detail and all(str(h) in detail for h in api_settings.training.horizons)
    _error(client.post("/v1/forecast", json={"zones": ["BEDOK"], "horizons": [60, 7]}), 422, "unknown_horizon")


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "says"),
    [
        ("get", "/v1/forecast/BEDOK", {"params": {"horizon": "soon"}}, "query.horizon"),
        ("post", "/v1/forecast", {"json": {"zones": ["BEDOK"], "horizon": [60]}}, "body.horizon: unexpected field"),
        ("post", "/v1/forecast", {"json": {"zones": []}}, "body.zones"),
        ("post", "/v1/forecast", {"json": {"zones": "BEDOK"}}, "body.zones"),
        ("post", "/v1/forecast", {"content": b"{not json", "headers": {"content-type": "application/json"}},
         "not valid JSON"),
        ("get", "/v1/zones/ORCHARD/history", {"params": {"hours": 0}}, "query.hours"),
        ("get", "/v1/forecast/" + "Z" * 65, {}, "path.zone"),
    ],
)
def test_bad_input_is_422_with_a_readable_message(client, ok, method, url, kwargs, says):
    body = _error(getattr(client, method)(url, **kwargs), 422, "validation")
    assert says in body["detail"], body


def test_limits_zones_by_horizons_and_history_hours(client, ok, api_settings):
    limit = api_settings.serving.max_zones_per_request
    zones = [f"Z{i}" for i in range(limit // 3 + 1)]
    detail = _error(client.post("/v1/forecast", json={"zones": zones, "horizons": [15, 30, 60]}), 422,
                    "limit_exceeded")["detail"]
    assert "max_zones_per_request" in detail
    too_long = api_settings.serving.max_history_hours + 1
    _error(client.get("/v1/zones/ORCHARD/history", params={"hours": too_long}), 422, "validation")


def test_body_over_the_limit_is_413_also_when_chunked(client, ok, api_settings):
    limit = api_settings.serving.max_body_bytes
    payload = json.dumps({"zones": ["BEDOK"] * (limit // 8)}).encode()
    assert len(payload) > limit

    def chunks():  # a generator body: sent chunked, no Content-Length the server could check up front
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    r = client.post("/v1/forecast", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert "max_body_bytes" in _error(r, 413, "body_too_large")["detail"]
    _error(client.post("/v1/forecast", content=payload, headers={"content-type": "application/json"}), 413,
           "body_too_large")
    # just under the limit passes the guard (and then fails validation on the unknown zone list size, not 413)
    assert client.post("/v1/forecast", json={"zones": ["BEDOK"]}).status_code == 200


@pytest.mark.parametrize(("mode", "kind"), [("no_features", "no_features"), ("store_down", "store_unavailable")])
def test_store_failures_are_503(client, backend, mode, kind):
    backend.mode = mode
    try:
        _error(client.get("/v1/forecast/BEDOK"), 503, kind)
        _error(client.get("/v1/zones"), 503, kind)
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["reasons"], r.text
    finally:
        backend.mode = "ok"


def test_unexpected_error_is_500_without_a_traceback(client, backend):
    backend.mode = "boom"
    try:
        r = client.get("/v1/forecast/BEDOK")
    finally:
        backend.mode = "ok"
    body = _error(r, 500, "internal")
    assert set(body) == {"error", "request_id"} and body["request_id"] == r.headers["x-request-id"]
    assert SECRET_MARKER not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text


def test_no_backend_yet_is_503_not_ready(api_settings):
    with Served(create_app(api_settings)) as c:
        _error(c.get("/v1/forecast/BEDOK"), 503, "not_ready")
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert c.get("/healthz").status_code == 200


# --- health, readiness, API key ----------------------------------------------------------------------------------


def test_health_and_readiness(client, backend, ok):
    assert client.get("/healthz").json() == {"status": "alive"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["models"]["60"] == 3
    backend.mode = "not_ready"
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["reasons"] == ["no champion for horizon 60"]


def test_api_key_guards_v1_only(api_settings, backend, ok):
    s = api_settings.model_copy(
        update={"serving": api_settings.serving.model_copy(update={"api_key": SecretStr("s3cret-key")})}
    )
    app = create_app(s)
    app.state.backend = backend
    with Served(app) as c:
        _error(c.get("/v1/forecast/BEDOK"), 401, "unauthorized")
        _error(c.get("/v1/zones", headers={"X-API-Key": "s3cret-kez"}), 401, "unauthorized")
        _error(c.post("/v1/forecast", json={}, headers={"X-API-Key": ""}), 401, "unauthorized")
        assert c.get("/v1/forecast/BEDOK", headers={"X-API-Key": "s3cret-key"}).status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert c.get(open_path).status_code == 200, open_path
        assert "APIKeyHeader" in json.dumps(c.get("/openapi.json").json()["components"]["securitySchemes"])
    # without a key configured, no header is needed (the module's client runs without one)


# --- OpenAPI, metrics, traces --------------------------------------------------------------------------------------


def test_openapi_document_is_valid_and_lists_every_route(client):
    import schemathesis

    doc = client.get("/openapi.json").json()
    schemathesis.openapi.from_dict(doc).validate()  # raises on a document that breaks the OpenAPI meta-schema
    assert {(p, m) for p, ops in doc["paths"].items() for m in ops} == {
        ("/v1/forecast/{zone}", "get"), ("/v1/forecast", "post"), ("/v1/zones", "get"),
        ("/v1/zones/{zone}/history", "get"), ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get"),
    }
    post = doc["paths"]["/v1/forecast"]["post"]
    assert post["tags"] == ["forecast"]
    assert doc["components"]["schemas"]["ForecastBody"]["examples"]
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert client.get("/docs").status_code == 200


METRIC_NAMES = [
    "ridecast_http_request_duration_seconds_bucket", "ridecast_http_errors_total", "ridecast_forecasts_total",
    "ridecast_feature_age_seconds", "ridecast_model_version", "ridecast_batch_size_bucket", "ridecast_replicas",
]


def test_metrics_expose_every_name_and_merge_other_processes(client, ok, api_settings):
    client.get("/v1/forecast/BEDOK", params={"horizon": 60})
    client.get("/v1/forecast/ATLANTIS")
    telemetry.observe_batch(4)
    telemetry.set_model_version(60, 3)
    telemetry.set_replicas(2)
    # another process on the same metrics dir (a second replica) counts an error of its own
    other = (
        "from ridecast.config import Settings; from serve import _telemetry as t; "
        f"t.configure(Settings(serving={{'metrics_dir': {str(telemetry.configured().metrics_dir)!r}, "
        f"'trace_file': {str(api_settings.trace_file)!r}}})); t.count_error('seen_by_the_other_replica')"
    )
    env = {k: v for k, v in os.environ.items() if k != telemetry.MULTIPROC_ENV}  # configure sets it from settings
    subprocess.run([sys.executable, "-c", other], check=True, cwd=Path(__file__).parents[2], env=env)

    text = client.get("/metrics").text
    for name in METRIC_NAMES:
        assert name in text, name
    assert 'route="/v1/forecast/{zone}"' in text and "ATLANTIS" not in text  # templates, never raw paths
    assert 'ridecast_http_errors_total{kind="unknown_zone"}' in text
    assert 'ridecast_http_errors_total{kind="seen_by_the_other_replica"} 1.0' in text
    assert 'ridecast_forecasts_total{source="model"}' in text
    assert 'ridecast_feature_age_seconds{horizon="60"} 12.5' in text


def _spans() -> list[dict]:
    assert telemetry.flush()
    path = telemetry.configured().trace_file
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_one_trace_per_request_ingress_then_lookup_and_inference(client, backend, ok, api_settings):
    backend.seen.clear()
    r = client.get("/v1/forecast/ORCHARD", params={"horizon": 30})
    assert r.status_code == 200
    trace_id = f"0x{backend.seen[-1][1]:032x}"
    spans = [s for s in _spans() if s["context"]["trace_id"] == trace_id]
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"GET /v1/forecast/{zone}", "feature_lookup", "inference"}, by_name.keys()
    root = by_name["GET /v1/forecast/{zone}"]
    assert root["parent_id"] is None and root["kind"] == "SpanKind.SERVER"
    assert root["resource"]["attributes"]["service.name"] == telemetry.configured().service_name
    assert root["attributes"]["ridecast.request_id"] == r.headers["x-request-id"]  # a logged id finds its trace
    for child in ("feature_lookup", "inference"):
        assert by_name[child]["parent_id"] == root["context"]["span_id"], child
    assert by_name["feature_lookup"]["attributes"]["zones"] == 1


def test_batch_span_links_each_request_instead_of_adopting_one(api_settings):
    tracer = trace.get_tracer("test")
    contexts = []
    for i in range(2):
        with tracer.start_as_current_span(f"request-{i}"):
            contexts.append(telemetry.request_context())
    with tracer.start_as_current_span("unrelated-current-request"):
        with telemetry.batch_span("inference_batch", contexts):
            with telemetry.span("inference"):
                pass
    spans = _spans()
    batch = [s for s in spans if s["name"] == "inference_batch"][-1]
    assert batch["parent_id"] is None and batch["attributes"]["batch.size"] == 2
    linked = {link["context"]["span_id"] for link in batch["links"]}
    assert linked == {f"0x{c.span_id:016x}" for c in contexts}
    inner = [s for s in spans if s["name"] == "inference" and s["parent_id"] == batch["context"]["span_id"]]
    assert len(inner) == 1


class SyncService:
    """The synchronous surface of ``ForecastService`` that :class:`DirectBackend` calls (the real one is in
    tests/integration/test_serve_http.py): a failed request comes back as the exception in its slot."""

    def __init__(self, inner: TableBackend) -> None:
        self.inner, self.threads = inner, []

    def forecast_many(self, requests, now=None):
        import asyncio

        self.threads.append(threading.current_thread().name)
        out = []
        for r in requests:
            try:
                out.append(asyncio.run(self.inner.forecast(r)))
            except Exception as exc:  # the batch contract: one request's failure is its slot, not the batch's
                out.append(exc)
        return out


def test_direct_backend_runs_the_service_off_the_loop_inside_the_request_trace(api_settings, backend, ok):
    service = SyncService(backend)
    app = create_app(api_settings)
    app.state.backend = DirectBackend(service)
    backend.seen.clear()
    with Served(app) as c:
        assert c.get("/v1/forecast/BEDOK", params={"horizon": 60}).status_code == 200
        _error(c.get("/v1/forecast/ATLANTIS"), 404, "unknown_zone")  # the slot's exception, raised
    assert service.threads and threading.main_thread().name not in service.threads
    trace_id = f"0x{backend.seen[0][1]:032x}"
    spans = [s for s in _spans() if s["context"]["trace_id"] == trace_id]
    root = next(s for s in spans if s["parent_id"] is None)
    assert {s["name"] for s in spans if s["parent_id"] == root["context"]["span_id"]} == {"feature_lookup", "inference"}


def _in_a_fresh_process(code: str, tmp_path: Path, **env: str) -> str:
    """Run ``code`` in a new interpreter from the repo root: what it sets up is process-wide (the tracer provider,
    the collector's permanent generation) and must not reach this test process."""
    base = {k: v for k, v in os.environ.items() if k != telemetry.MULTIPROC_ENV}
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], capture_output=True,
                         text=True, env={**base, "RIDECAST_HOME": str(tmp_path), **env}, timeout=120)
    return out.stdout


def test_spans_are_exported_in_batches_of_the_configured_size(tmp_path):
    # The SDK's schedule delay is an hour here, so only a full batch of trace_export_batch_size can export the four
    # spans; with the SDK's default batch (512) they would stay queued and the wait below would time out.
    code = (
        "import time; from ridecast.config import get_settings; from serve import _telemetry as t\n"
        "s = get_settings(); t.configure(s)\n"
        "for i in range(4):\n"
        "    with t.span(f's{i}'): pass\n"
        "deadline = time.monotonic() + 60\n"
        "while time.monotonic() < deadline:\n"
        "    n = len(s.trace_file.read_text().splitlines()) if s.trace_file.exists() else 0\n"
        "    if n >= 4: break\n"
        "    time.sleep(0.1)\n"
        "print(n)\n"
        "import os; os._exit(0)  # no shutdown flush: only what the batch exported counts\n"
    )
    out = _in_a_fresh_process(code, tmp_path, RIDECAST_SERVING__TRACE_EXPORT_BATCH_SIZE="4",
                              OTEL_BSP_SCHEDULE_DELAY="3600000")
    assert out.split()[-1] == "4"


def test_the_trace_file_is_shared_by_replicas_and_rotated_at_its_size(tmp_path):
    # two "replicas" write spans to one file at once, far past its size: it rotates, keeps trace_file_backups old
    # files, drops older spans, and every line is still one whole span (batches do not interleave)
    max_mb, backups = 0.02, 2
    code = (
        "import os, sys; from ridecast.config import get_settings; from serve import _telemetry as t\n"
        "s = get_settings(); t.configure(s)\n"
        "for i in range(400):\n"
        "    with t.span(f'r{sys.argv[1]}-{i}', padding='x' * 200): pass\n"
        "assert t.flush()\n"
    )
    base = {k: v for k, v in os.environ.items() if k != telemetry.MULTIPROC_ENV}
    env = {**base, "RIDECAST_HOME": str(tmp_path), "RIDECAST_SERVING__TRACE_FILE_MAX_MB": str(max_mb),
           "RIDECAST_SERVING__TRACE_FILE_BACKUPS": str(backups), "RIDECAST_SERVING__TRACE_EXPORT_BATCH_SIZE": "16"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], cwd=Path(__file__).parents[2], env=env)
             for n in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]

    trace_file = Settings(home=tmp_path).trace_file
    files = sorted(trace_file.parent.glob(trace_file.name + "*"))
    assert [f.name for f in files] == [trace_file.name] + [f"{trace_file.name}.{i}" for i in range(1, backups + 1)]
    lines = [line for f in files for line in f.read_text().splitlines()]
    spans = [json.loads(line)["name"] for line in lines]  # a line cut by another writer would not parse
    batch_bytes = max(len(line) + 1 for line in lines) * 16
    assert all(f.stat().st_size <= max_mb * 1024 * 1024 + batch_bytes for f in files)
    assert len(spans) < 800 and any(n.endswith("-399") for n in spans)  # the oldest were dropped, not the newest


@pytest.mark.parametrize("freeze", [True, False])
def test_a_serving_process_freezes_its_start_up_heap_when_configured(tmp_path, freeze):
    code = (
        "import gc; from ridecast.config import get_settings; from serve._service import freeze_startup_heap\n"
        "import pandas, xgboost  # a start-up heap\n"
        "before = gc.get_freeze_count(); n = freeze_startup_heap(get_settings())\n"
        "print(before, n, gc.get_freeze_count())\n"
    )
    before, returned, after = map(int, _in_a_fresh_process(
        code, tmp_path, RIDECAST_SERVING__FREEZE_HEAP=str(freeze).lower()).split()[-3:])
    assert before == 0
    if freeze:
        assert returned == after > 10_000  # the imports' objects are out of the full collections
    else:
        assert returned == after == 0
