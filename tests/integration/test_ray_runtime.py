"""``shutdown_ray`` leaves no process of its local Ray behind, not even a worker that would not exit by itself (as
a Ray Train controller was seen to, once, in CI): a real local Ray and an actor holding a non-daemon thread. And
it kills nothing else: a process that trained and then started the service (``make demo``) must leave the
service's own Ray running.

The Ray runs in a child process: ``ray.init`` imports prometheus-client, and in the suite's own process that would
come before the serving tests put it in multiprocess mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import json, os, subprocess, sys, threading, time
import psutil, ray
from ridecast.config import Settings
from training.ray_runtime import init_ray, shutdown_ray

@ray.remote(num_cpus=0)
class Lingering:
    def start(self):
        # keeps its process alive after Ray has shut down: Python waits for a non-daemon thread at exit
        threading.Thread(target=time.sleep, args=(600,), daemon=False).start()
        return os.getpid()

assert init_ray(Settings(home=sys.argv[1]), num_cpus=1)
actor = ray.get(Lingering.remote().start.remote(), timeout=120)
raylet = [p.pid for p in psutil.Process().children(recursive=True) if p.name() == "raylet"]
# another service this process started, with Ray workers of its own (the demo's `python -m serve`): not this Ray's
quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the test reads this script's output to its end
other = subprocess.Popen(["bash", "-c", "exec -a ray::ServeReplica:other sleep 600"], start_new_session=True, **quiet)
wrapper = subprocess.Popen(["bash", "-c", "bash -c 'exec -a ray::ServeReplica:nested sleep 600' & wait"], **quiet)
time.sleep(1)
nested = [p.pid for p in psutil.Process(wrapper.pid).children()]
shutdown_ray(grace_s=5)
print(json.dumps({"actor": actor, "raylet": raylet, "others": [other.pid, wrapper.pid, *nested]}))
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_no_process_of_the_local_ray_outlives_its_shutdown(tmp_path):
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    pids = json.loads(run.stdout.strip().splitlines()[-1])
    try:
        assert pids["raylet"] and not _alive(pids["raylet"][0])
        assert not _alive(pids["actor"]), "the actor's process outlived its Ray"
        # what the process started besides its Ray lives on, Ray-named processes under it too
        assert len(pids["others"]) == 3 and all(_alive(p) for p in pids["others"]), pids["others"]
    finally:
        for pid in [pids["actor"], *pids["others"]]:
            if _alive(pid):
                psutil.Process(pid).kill()
