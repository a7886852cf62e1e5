"""``shutdown_ray`` leaves no process of its local Ray behind, not even a worker that would not exit by itself (as
a Ray Train controller was seen to, once, in CI): a real local Ray and an actor holding a non-daemon thread."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest
import ray

from ridecast.config import Settings
from training.ray_runtime import init_ray, shutdown_ray

pytestmark = pytest.mark.integration


@ray.remote(num_cpus=0)
class Lingering:
    """Keeps its process alive after Ray has shut down: Python waits for a non-daemon thread at exit."""

    def start(self) -> int:
        threading.Thread(target=time.sleep, args=(600,), daemon=False).start()
        return os.getpid()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_no_process_of_the_local_ray_outlives_its_shutdown(tmp_path):
    shutdown_ray()  # a Ray an earlier test of this process left up
    assert init_ray(Settings(home=tmp_path), num_cpus=1)
    try:
        actor = ray.get(Lingering.remote().start.remote(), timeout=120)
        raylet = [p.pid for p in psutil.Process().children(recursive=True) if p.name() == "raylet"]
    finally:
        shutdown_ray(grace_s=5)
    assert raylet and not _alive(raylet[0])
    assert not _alive(actor), "the actor's process outlived its Ray"
