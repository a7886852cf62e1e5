"""One way to reach Ray for every Ray user of ours (training's XGBoostTrainer, serving's Ray Serve).

Either an existing cluster (``training.ray_address``) or a frugal local one bound to loopback: no dashboard,
no usage reporting, no auth token in the home dir, and a node address of 127.0.0.1 so the raylet, the object
manager and the workers do not listen on the outward interface.
"""

from __future__ import annotations

import atexit
import os
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["init_ray", "ray_env", "shutdown_ray"]


def ray_env() -> None:
    """Environment every process of ours that talks to Ray sets first (Ray's workers inherit it)."""
    # No token in the home dir, no usage reporting, and keep Ray's internal services on loopback.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def init_ray(settings: "Settings", num_cpus: float | None = None) -> bool:
    """Connect to ``training.ray_address`` or start a local Ray on 127.0.0.1; False when Ray was already up.

    ``num_cpus``: the local instance's logical CPUs (default ``training.ray_num_cpus``); a logical budget that
    decides how many tasks and replicas Ray places, not a limit on the machine.
    """
    ray_env()
    import ray

    if ray.is_initialized():
        return False
    if settings.training.ray_address:
        ray.init(address=settings.training.ray_address, log_to_driver=False)
        return True
    # ray.init turns _node_ip_address="127.0.0.1" into the outward interface (and so do the XGBoost Rabit
    # tracker and the agents) unless "cluster mode" is off; a local run needs no cluster mode, and with it
    # off the node address is loopback. The env var reaches the raylet and workers; the constant was read
    # when ray was imported in this process.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(
        num_cpus=num_cpus if num_cpus is not None else settings.training.ray_num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=1536 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    atexit.register(shutdown_ray)  # before Ray's own exit handler (registered on import, so it runs after ours)
    return True


def shutdown_ray(grace_s: float = 10.0) -> None:
    """``ray.shutdown()``, then SIGKILL to what is left of a local Ray this process started, after ``grace_s``.

    A Ray worker can outlive its Ray: a ``ray::TrainController`` of Ray Train was seen (once, in CI) logging its
    core worker destructed and then staying alive, idle, waiting on a thread of its own, reparented to init. The
    processes are read before the shutdown (afterwards they are no longer this process's descendants): the
    processes ``ray.init`` started as this process's children (its GCS, raylet and agents, by their program under
    Ray's package) and everything under them (the workers, and what they started). Nothing else this process
    started is touched, nor anything under it: a test's broker, or the demo's ``python -m serve``, whose own Ray
    must outlive the demo. Also run at exit for a local Ray (``init_ray`` registers it)."""
    import ray

    if not ray.is_initialized():
        return
    ours = _local_ray_processes()
    ray.shutdown()
    _gone, alive = psutil.wait_procs(ours, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:  # exited meanwhile
            continue
    psutil.wait_procs(alive, timeout=5)


def _local_ray_processes() -> list[psutil.Process]:
    import ray

    package = os.path.dirname(ray.__file__) + os.sep
    found = []
    for child in psutil.Process().children():
        try:
            cmd = child.cmdline()
            if cmd and any(arg.startswith(package) for arg in cmd[:3]):
                found += [child, *child.children(recursive=True)]
        except psutil.Error:  # exited meanwhile
            continue
    return found
