"""``python -m serve``: the forecasting service in the foreground until SIGTERM or SIGINT.

Ray Serve (default): start a local Ray on 127.0.0.1 (or connect to ``training.ray_address``), start Serve's ingress
on ``serving.host:serving.port`` (HAProxy, or its Python proxy: ``serving.ingress``), deploy
:func:`serve._deployment.build_app`, and block. Serve's own switches (direct ingress: each replica also serving HTTP
on its own port, where HAProxy sends each request) go into this process's environment first, which
the local Ray's controller and replicas inherit; a cluster joined by address keeps its own. ``--plain``: the
single-process uvicorn app of :mod:`serve._plain` (same model, features and HTTP layer, no Ray), the benchmark's
baseline and a fallback where Ray cannot run. ``--feed``: no HTTP, only the online-feature feed of the shared
(Redis) store (:func:`serve._feed.run_feed`: the lake bootstrap, then the features topic with committed offsets,
the loop a replica runs with ``serving.run_feed``), the chart's feed Deployment; SIGTERM stops it after its poll.

``ridecast serve`` runs this as a managed background process (``ridecast.stack.serving``); the stack cannot import
``serve``, so this module is its entry point. Stop it with SIGINT to its process group: Ray's own processes block
SIGINT (Ray starts them so), so only this driver gets it and tears Serve down in order; SIGTERM works too, but a
SIGTERM to the whole group also reaches Ray's processes, which then just die with their parent.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ridecast.config import Settings

log = logging.getLogger("serve")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, _frame) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def local_ray_cpus(settings: "Settings") -> float:
    """Logical CPUs of a local Ray for serving: room for ``max_replicas`` replicas (Serve's controller and proxy
    reserve none), and never less than training's local Ray would have."""
    sv = settings.serving
    return max(float(settings.training.ray_num_cpus), sv.max_replicas * sv.replica_num_cpus)


def _watch_replicas(stop: threading.Event, interval_s: float) -> None:
    """Keep the replicas gauge current from ``serve.status()`` (the controller's view, what autoscaling did)."""
    from ray import serve

    from serve import _telemetry
    from serve._deployment import APP_NAME, DEPLOYMENT_NAME

    last = None
    while not stop.wait(interval_s):
        try:
            app = serve.status().applications.get(APP_NAME)
            dep = app.deployments.get(DEPLOYMENT_NAME) if app else None
            running = dep.replica_states.get("RUNNING", 0) if dep else 0
        except Exception as exc:  # noqa: BLE001 - a controller mid-restart; the next poll retries
            log.debug("serve.status() failed: %s", exc)
            continue
        _telemetry.set_replicas(running)
        if running != last:
            log.info("replicas running: %d (%s)", running, dep.status.value if dep else "no deployment")
            last = running


def _wait_ready(settings: "Settings", stop: threading.Event) -> None:
    """Log when ``/readyz`` first says ready (or why not yet); the service stays up either way."""
    import httpx

    said = None
    while not stop.is_set():
        try:
            r = httpx.get(f"{settings.serve_url}/readyz", timeout=5.0)
            if r.status_code == 200:
                log.info("ready: %s", settings.serve_url)
                return
            said_now = r.text[:500]
        except httpx.HTTPError as exc:
            said_now = f"{type(exc).__name__}"
        if said_now != said:
            log.info("not ready yet: %s", said_now)
            said = said_now
        stop.wait(1.0)


def run_ray(settings: "Settings") -> int:
    from ray import serve

    from serve import _telemetry
    from serve._deployment import APP_NAME, build_app, haproxy_launcher_env, ray_serve_env
    from training.ray_runtime import init_ray, shutdown_ray

    own_cluster = not settings.training.ray_address
    stop = _stop_on_signals()
    os.environ.update(ray_serve_env(settings))  # the local Ray's processes inherit Serve's switches
    if own_cluster:
        os.environ.update(haproxy_launcher_env(settings))  # its HAProxy, if any, binds on serving.host only
    _telemetry.reset_metrics_dir(settings)  # replicas of an earlier run left their multiprocess files
    _telemetry.configure(settings, service_name="ridecast-serve-driver")
    init_ray(settings, num_cpus=local_ray_cpus(settings))
    try:
        serve.start(http_options={"host": settings.serving.host, "port": settings.serving.port})
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
        log.info("Ray Serve application %r deployed at %s", APP_NAME, settings.serve_url)
        threading.Thread(target=_watch_replicas, args=(stop, settings.serving.metrics_interval_s),
                         name="ridecast-replicas", daemon=True).start()
        _wait_ready(settings, stop)
        stop.wait()
    finally:
        log.info("stopping Serve")
        try:
            if own_cluster:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)  # a shared cluster keeps its Serve instance and other applications
        except Exception:  # noqa: BLE001 - Ray's processes may already be gone (SIGTERM to the group)
            log.warning("Serve did not shut down cleanly", exc_info=True)
        shutdown_ray()
        log.info("stopped")
    return 0


def run_plain(settings: "Settings") -> int:
    from serve._deployment import replica_env
    from serve._plain import run_plain

    os.environ.update(replica_env(settings))  # this process is the only replica
    run_plain(settings)
    return 0


def run_feed(settings: "Settings") -> int:
    from serve._feed import run_feed

    run_feed(settings, _stop_on_signals())
    return 0


def main(argv: list[str] | None = None) -> int:
    from ridecast.config import get_settings

    p = argparse.ArgumentParser(prog="python -m serve", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--plain", action="store_true", help="single-process uvicorn app, no Ray")
    mode.add_argument("--feed", action="store_true", help="only the feed of the shared store (lake, then topic)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.feed:
        settings = get_settings()
        log.info("starting the feature feed: %s -> %s store", settings.kafka.features_topic, settings.serving.backend)
        return run_feed(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll otherwise
    settings = get_settings()
    # this process and the replicas it starts write their samples where settings say: a PROMETHEUS_MULTIPROC_DIR
    # inherited from the caller (one that served in-process before) would send the driver's to another directory
    # than the replicas' runtime_env, and /metrics would miss them. Set before anything imports prometheus-client.
    from serve._telemetry import metrics_env

    os.environ.update(metrics_env(settings))
    t0 = time.monotonic()
    log.info("starting (%s) on %s", "plain uvicorn" if args.plain else "Ray Serve", settings.serve_url)
    from serve._errors import HAProxyNotInstalledError

    try:
        rc = run_plain(settings) if args.plain else run_ray(settings)
    except HAProxyNotInstalledError as exc:  # nothing started: say why and the fix
        log.error("refused: %s", exc)
        return 2
    log.info("exited after %.0fs", time.monotonic() - t0)
    return rc


if __name__ == "__main__":
    sys.exit(main())
