"""The forecasting service as a managed background process: ``python -m serve`` (Ray Serve) or ``--plain``.

The stack does not import ``serve`` (it sits below it): it starts the service by module name and talks to it
over HTTP, as any client would. Ready means ``GET /readyz`` answers 200 (a model for every horizon and features
in the store); until then ``/readyz`` says what is missing, which :func:`start_serving` passes on when it gives up.

Stopping sends SIGINT to the process group first: the driver handles it (``serve.shutdown``, ``ray.shutdown``)
while Ray's own processes, which block SIGINT, are stopped by it in order; SIGKILL of the group after
``timeout`` is the fallback, and Ray's processes die with their parent anyway (they are started to).
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import httpx
import psutil

from ridecast.config import Settings, get_settings, repo_root
from ridecast.stack.process import ManagedProcess

__all__ = ["REPLICA_TITLE", "ForecastRequestError", "ServingNotReadyError", "ServingNotRunningError", "ServingState",
           "replica_pids", "replica_urls", "request_forecast", "serving_command", "serving_health", "serving_process",
           "serving_state", "start_serving", "stop_serving"]

Mode = Literal["ray", "plain"]

# Ray titles a Serve replica's worker process ``ray::ServeReplica:<application>:<deployment>``; the names are
# serve._deployment's APP_NAME and DEPLOYMENT_NAME (this layer cannot import them).
REPLICA_TITLE = "ray::ServeReplica:ridecast:Forecaster"


class ServingNotReadyError(RuntimeError):
    """The service did not become ready in time, or exited while starting; the message says why and where the
    log is."""


@dataclass(frozen=True)
class ServingState:
    url: str
    mode: Mode
    pid: int
    ready: bool
    detail: str  # /readyz's answer, or why it could not be asked
    replica_urls: tuple[str, ...] = ()  # each replica's own HTTP server (Ray Serve direct ingress), past the proxy


def serving_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("serve", s.run_dir, s.log_dir)


def serving_command(plain: bool = False) -> list[str]:
    """The service's command line: this interpreter, the ``serve`` package's entry point."""
    return [sys.executable, "-m", "serve", *(["--plain"] if plain else [])]


def _readyz(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    try:
        r = httpx.get(f"{url}/readyz", timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"not answering: {type(exc).__name__}"
    return r.status_code == 200, r.text.strip()[:1000]


def start_serving(settings: Settings | None = None, *, plain: bool = False, timeout: float | None = None,
                  on_wait: Callable[[str], None] | None = None) -> ServingState:
    """Start the service unless it runs (idempotent) and wait until ``/readyz`` is 200.

    ``on_wait`` gets what the service says while it is not ready (for a progress line). Raises
    :class:`ServingNotReadyError` if it exits or is not ready within ``timeout`` (``serving.start_timeout_s``);
    the process is left running in the second case, so ``ridecast status`` and its log can show why.
    """
    s = settings or get_settings()
    proc = serving_process(s)
    if (rec := proc.info()) is None:
        rec = proc.start(serving_command(plain), cwd=repo_root(),
                         extra={"url": s.serve_url, "mode": "plain" if plain else "ray", "started_at": time.time()})
    url = rec["url"]
    deadline = time.monotonic() + (timeout or s.serving.start_timeout_s)
    said = ""
    while True:
        if proc.info() is None:
            raise ServingNotReadyError(f"the service exited during start-up{_last_error(proc.log_file)}; "
                                       f"see {proc.log_file}")
        ready, said = _readyz(url)
        if ready:
            return ServingState(url, rec["mode"], rec["pid"], True, said, tuple(replica_urls(s)))
        if on_wait is not None:
            on_wait(said)
        if time.monotonic() > deadline:
            raise ServingNotReadyError(f"the service at {url} is not ready: {said}; see {proc.log_file}")
        time.sleep(1.0)


def _last_error(log_file: Path) -> str:
    """``: <message>`` of the log's last ERROR line (``python -m serve`` logs why it refused to start), or ""."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line.split(" ERROR ", 1)[1] for line in lines if " ERROR " in line]
    return f": {errors[-1]}" if errors else ""


def serving_state(settings: Settings | None = None) -> ServingState | None:
    """The running service and what ``/readyz`` says now, or None when it does not run."""
    rec = serving_process(settings).info()
    if rec is None:
        return None
    ready, said = _readyz(rec["url"])
    return ServingState(rec["url"], rec["mode"], rec["pid"], ready, said, tuple(replica_urls(settings)))


def serving_health(settings: Settings | None = None) -> str:
    """One line for ``ridecast status``: "ok, <url>, N replicas", "not ready: <why>", or "not running"."""
    state = serving_state(settings)
    if state is None:
        return "not running"
    if not state.ready:
        return f"not ready: {state.detail}"
    if state.mode == "plain":
        return f"ok, {state.url}, plain (one process)"
    direct = f" (direct: {', '.join(state.replica_urls)})" if state.replica_urls else ""
    return f"ok, {state.url}, {len(replica_pids(settings))} replicas{direct}"


def replica_pids(settings: Settings | None = None) -> list[int]:
    """Process ids of this service's Ray Serve replicas (descendants of its driver titled as replicas)."""
    rec = serving_process(settings).info()
    if rec is None:
        return []
    try:
        children = psutil.Process(rec["pid"]).children(recursive=True)
    except psutil.Error:
        return []
    pids = []
    for child in children:
        try:
            if child.cmdline()[:1] and child.cmdline()[0].startswith(REPLICA_TITLE):
                pids.append(child.pid)
        except psutil.Error:  # exited meanwhile
            continue
    return sorted(pids)


def replica_urls(settings: Settings | None = None) -> list[str]:
    """The URLs the replicas answer at themselves when ``serving.direct_ingress`` is on: each replica's listening
    socket on ``serving.host`` within ``serving.direct_ingress_ports`` (Ray Serve allocates the port and does not
    publish it). ``serve_url`` stays the stable address (HAProxy sends each request to one of these; Serve's Python
    proxy adds a hop of its own); these are for a client or load balancer that spreads requests over them itself."""
    s = settings or get_settings()
    lo, hi = s.serving.direct_ingress_ports
    urls = []
    for pid in replica_pids(s):
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:  # exited meanwhile
            continue
        # a replica bound on every interface (where Ray binds it so) is reachable on serving.host too
        urls += [f"http://{s.serving.host}:{c.laddr.port}" for c in conns
                 if c.status == psutil.CONN_LISTEN and c.laddr.ip in (s.serving.host, "0.0.0.0", "::")
                 and lo <= c.laddr.port <= hi]
    return sorted(urls)


def stop_serving(settings: Settings | None = None, timeout: float = 60.0) -> bool:
    """SIGINT to the service's process group (an orderly Serve and Ray shutdown), SIGKILL after ``timeout``."""
    return serving_process(settings).stop(timeout=timeout, sig=signal.SIGINT)


class ServingNotRunningError(RuntimeError):
    """Nothing answers at ``settings.serve_url``; the message says how to start the service."""


class ForecastRequestError(RuntimeError):
    """The service answered a forecast request with an error (unknown zone, bad horizon, a missing API key)."""


def request_forecast(settings: Settings | None = None, zone: str = "", horizon: int | None = None,
                     timeout: float = 30.0) -> list[dict]:
    """``GET /v1/forecast/{zone}`` on the running service (the CLI's ``ridecast forecast``); the API key header is
    sent when ``serving.api_key`` is set. Returns the response's forecasts."""
    s = settings or get_settings()
    headers = {}
    if s.serving.api_key is not None:
        headers["X-API-Key"] = s.serving.api_key.get_secret_value()
    params = {} if horizon is None else {"horizon": horizon}
    try:
        r = httpx.get(f"{s.serve_url}/v1/forecast/{zone}", params=params, headers=headers, timeout=timeout)
    except httpx.ConnectError as exc:
        raise ServingNotRunningError(
            f"no forecasting service answers at {s.serve_url}: start it with `ridecast serve`") from exc
    if r.status_code != 200:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise ForecastRequestError(f"{s.serve_url} answered {r.status_code}: {detail}")
    body = r.json()
    return body["forecasts"] if isinstance(body, dict) else body
