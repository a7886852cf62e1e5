"""The HTTP layer of online forecasting: a FastAPI app over a :class:`ServingBackend`.

The app knows nothing of how forecasts are computed. Its routes find the backend at request time
(``backend_getter``, default ``request.app.state.backend``), so the plain uvicorn app sets a
:class:`DirectBackend` in its lifespan and the Ray Serve deployment sets its own per replica (inference under
``@serve.batch``), both over the same routes, validation, limits and error bodies.

Every error is JSON ``{"error": kind, "detail": message}`` (a 500 carries ``request_id`` instead of any detail;
the traceback goes to the server log under that id). The kinds are stable strings, counted by
``ridecast_http_errors_total{kind}``:

====================  ======  ===========================================================================
kind                  status  when
====================  ======  ===========================================================================
unauthorized          401     ``serving.api_key`` is set and ``X-API-Key`` is missing or wrong (/v1 only)
unknown_zone          404     a zone the online store never saw a window for
not_found             404     no such route
method_not_allowed    405     the route exists, the method does not
body_too_large        413     a body over ``serving.max_body_bytes`` (counted on the stream, chunked too)
validation            422     the request does not match its schema (pydantic's message, one line per field)
unknown_horizon       422     a horizon no model is trained for (the message names the valid ones)
limit_exceeded        422     zones x horizons over ``serving.max_zones_per_request``
not_ready             503     the replica has no backend yet (still starting)
no_features           503     the online store holds no window yet
store_unavailable     503     the online store did not answer (Redis down)
internal              500     anything else (a bug): ``{"error": "internal", "request_id": ...}``
====================  ======  ===========================================================================
"""

import asyncio
import logging
import math
import secrets
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, Protocol, Sequence

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve import _telemetry as telemetry
from serve._errors import NoFeaturesError, StoreUnavailableError, UnknownZoneError
from serve._service import Forecast, ForecastRequest, Readiness, UnknownHorizonError

if TYPE_CHECKING:
    from ridecast.config import Settings
    from serve._history import ZoneHistory
    from serve._service import ForecastService

__all__ = [
    "API_KEY_HEADER",
    "DirectBackend",
    "LimitExceededError",
    "ServingBackend",
    "create_app",
]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
# a bound on input, not a property of zones: zone codes are data (the zones file), this only keeps junk out
_ZONE_MAX_CHARS = 64
_REQUEST_ID_HEADER = "X-Request-ID"


# --- the backend the routes call ------------------------------------------------------------------------------


class ServingBackend(Protocol):
    """What the routes need from whoever computes forecasts. Raises the typed errors of ``serve._errors`` and
    :class:`UnknownHorizonError`; the HTTP layer turns them into status codes."""

    async def forecast(self, request: ForecastRequest) -> list[Forecast]: ...

    async def zones(self) -> list[str]: ...

    async def readiness(self) -> Readiness: ...

    async def history(self, zone: str, hours: int) -> "ZoneHistory": ...


class DirectBackend:
    """The synchronous :class:`ForecastService` in a worker thread (the plain single-process app): the event loop
    keeps accepting requests while a forecast computes. ``asyncio.to_thread`` copies the context, so the service's
    spans are children of the request's span."""

    def __init__(self, service: "ForecastService") -> None:
        self.service = service

    async def forecast(self, request: ForecastRequest) -> list[Forecast]:
        # forecast_many reports a failed request as the exception in its slot (so a batch's other requests live)
        (answer,) = await asyncio.to_thread(self.service.forecast_many, [request])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def zones(self) -> list[str]:
        return await asyncio.to_thread(self.service.zones)

    async def readiness(self) -> Readiness:
        return await asyncio.to_thread(self.service.readiness)

    async def history(self, zone: str, hours: int) -> "ZoneHistory":
        return await asyncio.to_thread(self.service.history, zone, hours)


BackendGetter = Callable[[Request], "ServingBackend | None"]


def _app_state_backend(request: Request) -> "ServingBackend | None":
    return getattr(request.app.state, "backend", None)


# --- request and response bodies -------------------------------------------------------------------------------

Zone = Annotated[str, StringConstraints(min_length=1, max_length=_ZONE_MAX_CHARS)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ForecastBody(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"zones": ["BEDOK", "ORCHARD"], "horizons": [15, 60]}, {"horizons": [60]}]},
    )
    zones: list[Zone] | None = Field(None, min_length=1, description="zone codes; omitted: every zone")
    horizons: list[int] | None = Field(None, min_length=1, description="minutes ahead; omitted: every horizon")


class ForecastOut(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "zone": "TAMPINES", "horizon_min": 60, "predicted_requests": 42.7,
                    "target_start": "2026-12-02T05:00:00Z", "target_end": "2026-12-02T06:00:00Z",
                    "feature_time": "2026-12-02T05:00:00Z", "feature_age_s": 12.4, "stale": False,
                    "source": "model", "model_name": "ridecast-demand-h60", "model_version": 3,
                    "fallback_reason": None,
                }
            ]
        },
    )
    zone: str
    horizon_min: int
    predicted_requests: float = Field(description="requests expected in [target_start, target_end)")
    target_start: datetime
    target_end: datetime
    feature_time: datetime = Field(description="end of the newest closed window the features read")
    feature_age_s: float = Field(description="how old the features were when the forecast was made")
    stale: bool = Field(description="features older than serving.max_feature_age_s")
    source: Literal["model", "seasonal_naive"]
    model_name: str | None = Field(description="registered MLflow model (null: no champion loaded)")
    model_version: int | None
    fallback_reason: str | None = Field(description="why source is seasonal_naive (null for a model forecast)")


class ForecastsOut(_Model):
    forecasts: list[ForecastOut] = Field(description="zone-major: every horizon of a zone, then the next zone")

    @classmethod
    def of(cls, forecasts: Sequence[Forecast]) -> "ForecastsOut":
        """The service's forecasts, validated in one call that reads their attributes.

        Why one call: an all-zones answer holds zones x horizons forecasts, and a model built per forecast (with
        each timestamp converted in Python) was most of that request's time in the HTTP layer."""
        return cls.model_validate({"forecasts": forecasts}, from_attributes=True)


class ZonesOut(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"zones": ["ANG_MO_KIO", "BEDOK"], "feature_time": "2026-12-02T05:00:00Z",
                          "feature_age_s": 12.4}]
        },
    )
    zones: list[str]
    feature_time: datetime | None = Field(
        description="newest closed window in the online store: the feature time a forecast of any zone uses now"
    )
    feature_age_s: float | None


class ActualOut(_Model):
    window_end: datetime
    window_minutes: int
    requests: float


class PastForecastOut(_Model):
    feature_time: datetime
    horizon_min: int
    target_start: datetime
    target_end: datetime
    predicted_requests: float
    model_version: int | None


class HistoryOut(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "zone": "ORCHARD", "since": "2026-12-01T05:00:00Z", "until": "2026-12-02T05:00:00Z",
                "actuals": [{"window_end": "2026-12-02T04:55:00Z", "window_minutes": 5, "requests": 31}],
                "forecasts": [{"feature_time": "2026-12-02T04:00:00Z", "horizon_min": 60,
                               "target_start": "2026-12-02T04:00:00Z", "target_end": "2026-12-02T05:00:00Z",
                               "predicted_requests": 356.2, "model_version": 3}],
            }]
        },
    )
    zone: str
    since: datetime
    until: datetime
    actuals: list[ActualOut] = Field(description="requests per window (the smallest window), oldest first")
    forecasts: list[PastForecastOut] = Field(description="forecasts made for this zone (gold.forecasts)")


class ReadinessOut(_Model):
    ready: bool
    models: dict[str, int | None] = Field(description="horizon (minutes) -> champion version loaded (null: none)")
    feature_time: datetime | None
    reasons: list[str] = Field(description="what is missing, when not ready")


class StatusOut(_Model):
    status: Literal["alive"]


class ErrorOut(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"error": "unknown_zone", "detail": "unknown zone(s): ATLANTIS"}]},
    )
    error: str = Field(description="a stable kind (see the module doc of serve._api)")
    detail: str | None = None
    request_id: str | None = Field(None, description="500 only: the id the server log holds the cause under")


def _dt(ts: Any) -> datetime:
    return pd.Timestamp(ts).to_pydatetime()


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if v is pd.NaT else _num(v)) for k, v in row.items()})
    return out


def _history_out(h: "ZoneHistory") -> HistoryOut:
    forecasts = [
        {**r, "model_version": None if r.get("model_version") is None else int(r["model_version"])}
        for r in _records(h.forecasts)
    ]
    return HistoryOut(
        zone=h.zone, since=_dt(h.since), until=_dt(h.until),
        actuals=[ActualOut.model_validate(r) for r in _records(h.actuals)],
        forecasts=[PastForecastOut.model_validate(r) for r in forecasts],
    )


# --- errors ----------------------------------------------------------------------------------------------------


class LimitExceededError(ValueError):
    """A request bigger than the serving limits allow (a 422 naming the limit and its setting)."""


_TYPED_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (UnknownZoneError, 404, "unknown_zone"),
    (UnknownHorizonError, 422, "unknown_horizon"),
    (LimitExceededError, 422, "limit_exceeded"),
    (NoFeaturesError, 503, "no_features"),
    (StoreUnavailableError, 503, "store_unavailable"),
)
_STATUS_KINDS = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                 503: "not_ready"}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (404, "unknown zone"), (413, "body too large"), (422, "invalid request, unknown horizon or over a limit"),
        (500, "internal error (no detail; the server log has it under request_id)"),
        (503, "no features yet, store unavailable or the replica is starting"),
    )
}


def _error(status: int, kind: str, detail: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
    telemetry.count_error(kind)
    return JSONResponse(ErrorOut(error=kind, detail=detail).model_dump(exclude_none=True), status, headers=headers)


def _readable(exc: RequestValidationError) -> str:
    """pydantic's errors as one line per field: ``query.horizon: Input should be a valid integer (got 'x')``."""
    lines = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ())) or "request"
        msg = e.get("msg", "invalid")
        if e.get("type") == "json_invalid":
            msg = f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})"
        elif e.get("type") == "extra_forbidden":
            msg = "unexpected field (allowed: see /openapi.json)"
        elif "input" in e and e.get("type") not in ("missing",):
            shown = repr(e["input"])
            msg = f"{msg} (got {shown[:60] + '...' if len(shown) > 60 else shown})"
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "validation", _readable(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _STATUS_KINDS.get(exc.status_code, "http_error")
        return _error(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    for cls, status, kind in _TYPED_ERRORS:

        async def _typed(request: Request, exc: Exception, status: int = status, kind: str = kind) -> JSONResponse:
            return _error(status, kind, str(exc))

        app.add_exception_handler(cls, _typed)


# --- the outermost guard: request id, body limit, latency metric, 500 without a traceback ----------------------


class _BodyTooLarge(Exception):
    pass


class _Guard:
    """Pure ASGI middleware around the whole app.

    * The body is read here, up to ``max_body_bytes`` counted on the stream (a chunked body has no Content-Length
      to trust), and replayed to the app: an oversized body is refused with 413 before any route parses it.
    * Anything the app raises becomes ``500 {"error": "internal", "request_id": ...}``; the traceback is logged
      under that id and never sent.
    * The latency histogram is labelled with the route *template* (``/v1/forecast/{zone}``), never the raw path,
      so label cardinality stays bounded whatever clients send.
    """

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        # the ingress span is current here (the instrumentation wraps the whole stack): a logged 500 finds its trace
        trace.get_current_span().set_attribute("ridecast.request_id", request_id)
        status = {"code": 500, "started": False}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (_REQUEST_ID_HEADER.lower().encode(), request_id.encode())]
            await send(message)

        try:
            try:
                replay = await self._read_body(scope, receive)
            except _BodyTooLarge:
                resp = _error(413, "body_too_large", f"the body exceeds serving.max_body_bytes={self.max_body_bytes}")
                await resp(scope, receive, send_wrapper)
                return
            await self.app(scope, replay, send_wrapper)
        except Exception:
            log.exception("request %s %s %s failed", request_id, scope.get("method"), scope.get("path"))
            if not status["started"]:
                telemetry.count_error("internal")
                body = ErrorOut(error="internal", request_id=request_id).model_dump(exclude_none=True)
                await JSONResponse(body, 500)(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            telemetry.observe_request(template, scope.get("method", ""), status["code"], time.perf_counter() - start)

    async def _read_body(self, scope, receive):
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _BodyTooLarge
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # a disconnect: let the app see it
                first = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        pending = [first]

        async def replay():
            return pending.pop() if pending else await receive()

        return replay


# --- the app ---------------------------------------------------------------------------------------------------


def _api_key_check(settings: "Settings") -> list:
    """The /v1 routes' dependency when ``serving.api_key`` is set.

    Health, readiness and metrics stay open: a kubelet probe or a Prometheus scrape carries no secret, they
    reveal no forecast, and a probe that failed on auth would restart healthy pods."""
    key = settings.serving.api_key
    if key is None:
        return []
    expected = key.get_secret_value().encode()
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="serving.api_key")

    async def check(given: Annotated[str | None, Depends(header)]) -> None:
        # compare_digest: the time taken does not reveal how much of a guess matched
        if given is None or not secrets.compare_digest(given.encode(), expected):
            raise StarletteHTTPException(401, f"missing or wrong {API_KEY_HEADER} header")

    return [Depends(check)]


def create_app(
    settings: "Settings",
    backend_getter: BackendGetter | None = None,
    lifespan: Callable[[FastAPI], Any] | None = None,
) -> FastAPI:
    """The serving API. ``backend_getter(request)`` finds the backend per request (default
    ``request.app.state.backend``); ``lifespan`` is the plain app's start/stop (Ray Serve has its own)."""
    getter = backend_getter or _app_state_backend
    sv = settings.serving
    horizons = tuple(settings.training.horizons)

    app = FastAPI(
        title="ridecast online forecasting",
        version="1",
        description="Demand forecasts per zone from the freshest features and the MLflow champion of each horizon. "
        "Errors are `{\"error\": kind, \"detail\": message}`.",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "forecast", "description": "forecasts from the online features"},
            {"name": "zones", "description": "the zones served and their recent past"},
            {"name": "operations", "description": "liveness, readiness and metrics (never behind the API key)"},
        ],
    )
    _install_error_handlers(app)

    # async: FastAPI runs a plain `def` dependency in a worker thread, a thread hop on every request for a lookup
    async def backend(request: Request) -> ServingBackend:
        b = getter(request)
        if b is None:
            raise StarletteHTTPException(503, "the service is starting: no backend yet")
        return b

    Backend = Annotated[ServingBackend, Depends(backend)]

    def check_horizons(asked: Sequence[int] | None) -> tuple[int, ...]:
        if asked is None:
            return horizons
        unknown = [h for h in dict.fromkeys(asked) if h not in horizons]
        if unknown:  # checked here too, before any backend work: the same error the service raises
            raise UnknownHorizonError(unknown, list(horizons))
        return tuple(dict.fromkeys(asked))

    async def answer(b: ServingBackend, zones: tuple[str, ...] | None, hs: tuple[int, ...]) -> ForecastsOut:
        forecasts = await b.forecast(ForecastRequest(zones, hs))
        by_source: dict[str, int] = {}
        ages: dict[int, float] = {}
        for f in forecasts:
            by_source[f.source] = by_source.get(f.source, 0) + 1
            ages[f.horizon_min] = max(ages.get(f.horizon_min, 0.0), f.feature_age_s)
        for source, n in by_source.items():
            telemetry.count_forecasts(source, n)
        for h, age in ages.items():
            telemetry.observe_feature_age(h, age)
        return ForecastsOut.of(forecasts)

    v1 = APIRouter(prefix="/v1", dependencies=_api_key_check(settings), responses=_ERROR_RESPONSES)
    if sv.api_key is not None:
        v1.responses = {**_ERROR_RESPONSES, 401: {"model": ErrorOut, "description": "missing or wrong API key"}}

    @v1.get("/forecast/{zone}", tags=["forecast"], response_model=ForecastsOut, summary="Forecast one zone")
    async def forecast_zone(
        b: Backend,
        zone: Annotated[Zone, Path(description="zone code", examples=["TAMPINES"])],
        horizon: Annotated[
            int | None, Query(description=f"minutes ahead, one of {list(horizons)}; omitted: all", examples=[60])
        ] = None,
    ) -> ForecastsOut:
        return await answer(b, (zone,), check_horizons(None if horizon is None else [horizon]))

    @v1.post("/forecast", tags=["forecast"], response_model=ForecastsOut, summary="Forecast zones x horizons")
    async def forecast_batch(b: Backend, body: ForecastBody) -> ForecastsOut:
        hs = check_horizons(body.horizons)
        zones = None if body.zones is None else tuple(dict.fromkeys(body.zones))
        # "every zone" is bounded by the zone list the operator configured, not by the client
        if zones is not None and len(zones) * len(hs) > sv.max_zones_per_request:
            raise LimitExceededError(
                f"{len(zones)} zones x {len(hs)} horizons = {len(zones) * len(hs)} forecasts; at most "
                f"serving.max_zones_per_request={sv.max_zones_per_request} per request"
            )
        return await answer(b, zones, hs)

    @v1.get("/zones", tags=["zones"], response_model=ZonesOut, summary="Zones served and the feature time")
    async def zones(b: Backend) -> ZonesOut:
        names, ready = await asyncio.gather(b.zones(), b.readiness())
        ft = None if ready.feature_time is None else _dt(ready.feature_time)
        age = None if ft is None else (pd.Timestamp.now(tz="UTC") - pd.Timestamp(ft)).total_seconds()
        return ZonesOut(zones=list(names), feature_time=ft, feature_age_s=age)

    @v1.get("/zones/{zone}/history", tags=["zones"], response_model=HistoryOut, summary="A zone's recent past")
    async def history(
        b: Backend,
        zone: Annotated[Zone, Path(description="zone code", examples=["ORCHARD"])],
        hours: Annotated[
            int, Query(ge=1, le=sv.max_history_hours, description="how far back (serving.max_history_hours at most)")
        ] = 24,
    ) -> HistoryOut:
        return _history_out(await b.history(zone, hours))

    app.include_router(v1)

    @app.get("/healthz", tags=["operations"], response_model=StatusOut, summary="The process is alive")
    async def healthz() -> StatusOut:
        return StatusOut(status="alive")

    @app.get(
        "/readyz", tags=["operations"], response_model=ReadinessOut, summary="Ready to forecast",
        responses={503: {"model": ReadinessOut, "description": "not ready: the reasons say what is missing"}},
    )
    async def readyz(request: Request) -> Response:
        b = getter(request)
        if b is None:
            r = ReadinessOut(ready=False, models={}, feature_time=None, reasons=["the service is starting"])
        else:
            try:
                got = await b.readiness()
            except (NoFeaturesError, StoreUnavailableError) as exc:
                r = ReadinessOut(ready=False, models={}, feature_time=None, reasons=[str(exc)])
            else:
                r = ReadinessOut(
                    ready=got.ready, models={str(h): v for h, v in got.models.items()},
                    feature_time=None if got.feature_time is None else _dt(got.feature_time), reasons=got.reasons,
                )
        return JSONResponse(r.model_dump(mode="json"), 200 if r.ready else 503)

    @app.get(
        "/metrics", tags=["operations"], summary="Prometheus metrics of every replica on this node",
        response_class=Response, responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        body, content_type = telemetry.metrics_exposition()
        return Response(body, media_type=content_type)

    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # the ingress span of each request (the global provider: a proxy until telemetry.configure sets it)
    FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])
    app.add_middleware(_Guard, max_body_bytes=sv.max_body_bytes)
    return app

