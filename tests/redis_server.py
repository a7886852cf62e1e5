"""A throwaway Redis server for tests and benchmarks: the Kubernetes online-store backend, run for real.

Debian's ``redis-server`` (``apt-get install -y redis-server``), on a free 127.0.0.1 port, protected mode on, no
persistence (no RDB snapshots, no AOF), its files in a temporary directory that is removed on stop.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ridecast.stack.process import free_port

__all__ = ["RedisServer", "redis_server_bin"]


def redis_server_bin() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    def __init__(self) -> None:
        binary = redis_server_bin()
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install -y redis-server")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="ridecast-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        import redis

        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--daemonize",
                "no",
                "--logfile",
                str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "redis.log").read_text() if (self.root / "redis.log").exists() else ""
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}: {log[-500:]}") from exc
                time.sleep(0.1)
        client.close()
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
