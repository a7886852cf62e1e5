"""Traces (OpenTelemetry) and metrics (prometheus-client) of the serving path.

The service and the HTTP layer call the small functions below; they are cheap no-ops until :func:`configure` ran
(a replica or the plain app configures once at start).

**Traces.** One trace per request: the ingress span (``opentelemetry-instrumentation-fastapi``, named after the
route template) with the children ``feature_lookup`` and ``inference`` that the service opens with :func:`span`.
Spans go to ``serving.otlp_endpoint`` by OTLP/HTTP when it is set, else to ``settings.trace_file`` as JSON lines
(the SDK's ``ConsoleSpanExporter`` writing one ``ReadableSpan.to_json`` per line). Several replicas share the file,
and it is bounded: concurrent-log-handler appends each export batch under its lock file and rotates the file at
``serving.trace_file_max_mb`` (keeping ``trace_file_backups``), whichever process writes past the size first. The
provider is process-wide (OpenTelemetry's global provider can be set once per process), so
the first :func:`configure` of a process chooses the destination.

Under Ray Serve, ``@serve.batch`` runs one inference for several requests. Making the batch a child of one of them
would file the others' work under the wrong trace, so the batch gets its own trace (:func:`batch_span`) whose span
*links* to the ingress span of every request it served (:func:`request_context`, captured in the request's
coroutine before it queues): a trace viewer shows, from the batch, which requests it answered, and each request's
trace still holds its own ingress span and timing.

**Metrics.** prometheus-client in multiprocess mode: every process writes its samples to files in
``settings.metrics_dir`` (``PROMETHEUS_MULTIPROC_DIR``) and ``/metrics`` on any replica merges all of them, so
one scrape sees every replica on the node. prometheus-client decides the mode when it is first imported, so the
variable must be in the environment before that: :func:`configure` sets it when nothing imported
prometheus-client yet, and a Serve deployment puts :func:`metrics_env` in its replicas' ``runtime_env``. Whoever
starts the service wipes the directory first (:func:`reset_metrics_dir`): samples of a previous run would
otherwise be summed into this one's. Gauges use the ``mostrecent`` mode (the newest sample of any process wins):
a replica killed with ``kill -9`` cannot unregister itself, and a ``live*`` mode would need it to.

On Kubernetes each pod has its own metrics directory (an ``emptyDir``): ``/metrics`` of a pod shows the replicas
in that pod only, Prometheus scrapes every pod (a PodMonitor) and sums across pods in the query
(``sum without (pod, instance) (...)``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from ridecast.config import Settings

__all__ = [
    "MULTIPROC_ENV",
    "batch_span",
    "Configured",
    "configure",
    "configured",
    "count_error",
    "count_forecasts",
    "flush",
    "metrics_env",
    "metrics_exposition",
    "observe_batch",
    "observe_feature_age",
    "observe_request",
    "request_context",
    "reset_metrics_dir",
    "set_model_version",
    "set_replicas",
    "span",
]

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's switch to multiprocess mode
_TRACER = "ridecast.serve"
# request latency: a forecast answers in milliseconds; the top buckets catch a cold replica or a slow store
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

_lock = threading.Lock()
_provider: Any = None  # the SDK TracerProvider this process configured
_metrics: "_Metrics | None" = None


@dataclass(frozen=True)
class Configured:
    """Where this process's telemetry goes (chosen by its first :func:`configure`)."""

    service_name: str
    trace_file: Path | None  # None: spans go to otlp_endpoint
    otlp_endpoint: str | None
    metrics_dir: Path | None  # None: single-process metrics (prometheus_client was imported too early)


_configured: Configured | None = None


def configured() -> Configured | None:
    return _configured


class _Metrics:
    """The serving metrics, created once per process after the multiprocess mode is settled."""

    def __init__(self, multiprocess_dir: Path | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess_dir = multiprocess_dir
        # multiprocess: samples live in files, exposition builds a registry over them; else a private registry
        self.registry = None if multiprocess_dir else CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "ridecast_http_request_duration_seconds", "HTTP request latency by route template, method and status",
            ["route", "method", "status"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.errors = Counter("ridecast_http_errors", "error responses by kind (the body's `error`)", ["kind"],
                              registry=r)
        self.forecasts = Counter("ridecast_forecasts", "forecasts answered, by source (model | seasonal_naive)",
                                 ["source"], registry=r)
        self.feature_age = Gauge("ridecast_feature_age_seconds", "age of the features of the newest answer",
                                 ["horizon"], multiprocess_mode="mostrecent", registry=r)
        self.model_version = Gauge("ridecast_model_version", "champion version served (-1: none loaded)",
                                   ["horizon"], multiprocess_mode="mostrecent", registry=r)
        self.batch = Histogram("ridecast_batch_size", "requests merged into one inference (@serve.batch)",
                               buckets=_BATCH_BUCKETS, registry=r)
        self.replicas = Gauge("ridecast_replicas", "serving replicas, as the deployment last reported",
                              multiprocess_mode="mostrecent", registry=r)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return generate_latest(registry), CONTENT_TYPE_LATEST


def metrics_env(settings: "Settings") -> dict[str, str]:
    """The environment a serving process needs before it starts (a Serve deployment's ``runtime_env``)."""
    return {MULTIPROC_ENV: str(settings.metrics_dir)}


def reset_metrics_dir(settings: "Settings") -> Path:
    """Empty ``settings.metrics_dir`` (whoever starts the service calls this once, before any replica runs)."""
    d = settings.metrics_dir
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _multiprocess_dir(settings: "Settings") -> Path | None:
    """The directory this process's samples go to, or None when prometheus-client was imported before anyone set
    the variable (then the mode is fixed to single-process and /metrics shows this process only)."""
    current = os.environ.get(MULTIPROC_ENV)
    if current:
        if Path(current) != Path(settings.metrics_dir):
            log.warning("metrics: %s=%s is set for this process; settings.metrics_dir=%s is not used",
                        MULTIPROC_ENV, current, settings.metrics_dir)
        Path(current).mkdir(parents=True, exist_ok=True)
        return Path(current)
    if "prometheus_client" in sys.modules:
        log.warning("metrics: prometheus_client was imported before %s was set: /metrics shows this process only "
                    "(start the process with serve.metrics_env(settings) in its environment)", MULTIPROC_ENV)
        return None
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(settings.metrics_dir)
    return settings.metrics_dir


def _span_exporter(settings: "Settings"):
    if settings.serving.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.serving.otlp_endpoint), settings.serving.otlp_endpoint
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    path = settings.trace_file
    path.parent.mkdir(parents=True, exist_ok=True)
    out = _RotatingLines(path, settings.serving.trace_file_max_mb, settings.serving.trace_file_backups)
    return ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n"), str(path)


class _RotatingLines:
    """The span exporter's ``out``: the lines of one export batch, appended to the trace file in one locked write.

    Why a batch per write: concurrent-log-handler takes a lock file per record so that replicas sharing the file
    neither interleave nor rotate it twice, and a lock per span would cost as much as serialising it. The exporter
    calls ``write`` per span and ``flush`` once per batch (and the SDK exports one batch at a time)."""

    def __init__(self, path: Path, max_mb: float, backups: int) -> None:
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        self._handler = ConcurrentRotatingFileHandler(
            str(path), "a", maxBytes=int(max_mb * 1024 * 1024), backupCount=backups, encoding="utf-8"
        )
        self._handler.terminator = ""  # each line brings its own newline
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def flush(self) -> None:
        with self._lock:
            text, self._lines = "".join(self._lines), []
        if text:
            record = logging.LogRecord("ridecast.spans", logging.INFO, __file__, 0, text, None, None)
            self._handler.handle(record)


def configure(settings: "Settings", service_name: str = "ridecast-serve") -> None:
    """Set up traces and metrics for this process (idempotent: later calls keep the first destination)."""
    global _provider, _metrics, _configured
    with _lock:
        if _metrics is None:
            _metrics = _Metrics(_multiprocess_dir(settings))
        if _provider is not None:
            return
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {"service.name": service_name, "service.instance.id": f"{socket.gethostname()}-{os.getpid()}"}
        )
        provider = TracerProvider(resource=resource)
        exporter, where = _span_exporter(settings)
        # small batches: serialising a span holds the GIL, so an export is a pause for every request in flight;
        # many short pauses instead of the SDK's default 512-span burst keep it out of the latency tail
        provider.add_span_processor(
            BatchSpanProcessor(exporter, max_export_batch_size=settings.serving.trace_export_batch_size)
        )
        trace.set_tracer_provider(provider)
        _provider = provider
        otlp = settings.serving.otlp_endpoint
        _configured = Configured(service_name, None if otlp else settings.trace_file, otlp, _metrics.multiprocess_dir)
        log.info("traces: %s; metrics: %s", where, _metrics.multiprocess_dir or "this process only")


def flush(timeout_ms: int = 5000) -> bool:
    """Export the spans still buffered (tests, shutdown)."""
    return True if _provider is None else bool(_provider.force_flush(timeout_ms))


def _tracer():
    from opentelemetry import trace

    return trace.get_tracer(_TRACER)


@contextmanager
def span(name: str, **attributes) -> Iterator[None]:
    """A child of the current span (``feature_lookup``, ``inference``); a no-op before :func:`configure`."""
    if _provider is None:
        yield
        return
    with _tracer().start_as_current_span(name, attributes=attributes or None):
        yield


def request_context() -> "SpanContext | None":
    """The current request's span context, captured before the request joins a batch (see the module doc)."""
    if _provider is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return ctx if ctx.is_valid else None


@contextmanager
def batch_span(name: str, requests: Iterable["SpanContext | None"], **attributes) -> Iterator[None]:
    """A new trace for work done once for several requests, linked to each request's span; the spans the work
    opens inside (``feature_lookup``, ``inference``) are its children."""
    if _provider is None:
        yield
        return
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Link

    links = [Link(c) for c in requests if c is not None]
    attrs = {"batch.size": len(links), **attributes}
    # an empty Context: the batch starts its own trace instead of joining whichever request's context runs it
    with _tracer().start_as_current_span(name, context=otel_context.Context(), links=links, attributes=attrs):
        yield


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    if _metrics is not None:
        _metrics.latency.labels(route, method, str(status)).observe(seconds)


def count_error(kind: str) -> None:
    if _metrics is not None:
        _metrics.errors.labels(kind).inc()


def count_forecasts(source: str, n: int = 1) -> None:
    if _metrics is not None and n:
        _metrics.forecasts.labels(source).inc(n)


def observe_batch(size: int) -> None:
    if _metrics is not None:
        _metrics.batch.observe(size)


def observe_feature_age(horizon: int, seconds: float) -> None:
    if _metrics is not None:
        _metrics.feature_age.labels(str(horizon)).set(seconds)


def set_model_version(horizon: int, version: int | None) -> None:
    if _metrics is not None:
        _metrics.model_version.labels(str(horizon)).set(-1 if version is None else version)


def set_replicas(n: int) -> None:
    """The deployment reports its replica count (Serve's autoscaler decides it)."""
    if _metrics is not None:
        _metrics.replicas.set(n)


def metrics_exposition() -> tuple[bytes, str]:
    """The Prometheus text of every process sharing the metrics dir, and its content type."""
    if _metrics is None:  # importing prometheus_client here would fix its mode before configure() sets it
        return b"", "text/plain; version=0.0.4; charset=utf-8"
    return _metrics.exposition()
