"""An ASGI app served by uvicorn on a free 127.0.0.1 port in a thread, for tests that talk real HTTP to it."""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn

from ridecast.stack.process import free_port

__all__ = ["Served"]


class Served:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a thread. ``start_timeout_s`` bounds the wait for the
    lifespan (a real service bootstraps its store and loads models before uvicorn accepts connections)."""

    def __init__(self, app, start_timeout_s: float = 60.0) -> None:
        self.port, self.start_timeout_s = free_port(), start_timeout_s
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
