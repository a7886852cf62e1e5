"""The serving API without Ray: one uvicorn process, one :class:`ForecastService`, the same routes.

Two uses: the baseline the benchmark compares Ray Serve against (same model, same features, same HTTP layer, so
the ratio measures what Serve's proxy, batching and replicas cost or gain), and a simple way to serve on a
machine without Ray. The service starts in the lifespan (store bootstrap, feed, model poller), so uvicorn accepts
connections only once a forecast can be answered, and closes on shutdown.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator

from serve import _telemetry as telemetry
from serve._api import DirectBackend, create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ridecast.config import Settings
    from serve._service import ForecastService

__all__ = ["plain_app", "run_plain"]


def plain_app(
    settings: "Settings", service: "ForecastService | None" = None, *, own_process: bool = False
) -> "FastAPI":
    """The app with a :class:`DirectBackend` over ``service`` (default ``ForecastService(settings)``), which the
    lifespan starts and closes. Telemetry is configured here: this process is the whole service. ``own_process``:
    the process does nothing else (``run_plain``), so its start-up heap is frozen once the service started."""

    @asynccontextmanager
    async def lifespan(app: "FastAPI") -> AsyncIterator[None]:
        from serve._service import ForecastService, freeze_startup_heap

        telemetry.configure(settings, service_name="ridecast-serve-plain")
        svc = service or ForecastService(settings)
        await asyncio.to_thread(svc.start)  # bootstraps from the lake: keep the loop free meanwhile
        if own_process:
            freeze_startup_heap(settings)
        app.state.backend = DirectBackend(svc)
        try:
            yield
        finally:
            app.state.backend = None
            await asyncio.to_thread(svc.close)
            telemetry.flush()

    return create_app(settings, lifespan=lifespan)


def run_plain(settings: "Settings") -> None:
    """Serve on ``serving.host``:``serving.port`` (127.0.0.1 unless configured) until interrupted. This process
    starts the service, so it empties the metrics dir first (see :func:`serve._telemetry.reset_metrics_dir`)."""
    import uvicorn

    telemetry.reset_metrics_dir(settings)
    app = plain_app(settings, own_process=True)
    uvicorn.run(app, host=settings.serving.host, port=settings.serving.port, log_level="info")
