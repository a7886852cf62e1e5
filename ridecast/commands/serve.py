"""``ridecast serve | forecast``: the online forecasting service (:mod:`ridecast.stack.serving`) and its client."""

from __future__ import annotations

import typer

__all__ = ["register"]


def serve(
    foreground: bool = typer.Option(False, "--foreground", help="run in this terminal until Ctrl-C"),
    plain: bool = typer.Option(False, "--plain", help="one uvicorn process instead of Ray Serve (same model, API)"),
) -> None:
    """Start the forecasting API (Ray Serve on serving.host:serving.port) in the background and wait until ready."""
    from rich.console import Console

    from ridecast.stack import lifecycle
    from ridecast.stack.serving import ServingNotReadyError, serving_command
    from ridecast.views import serve_text, spinner

    if foreground:
        import os
        import sys

        cmd = serving_command(plain)
        os.execv(cmd[0], cmd)  # the service's own signal handling (Ctrl-C) then applies as is
        sys.exit(1)  # pragma: no cover - execv does not return
    console = Console()
    with spinner(console) as progress:
        task = progress.add_task("starting the forecasting service (Ray, models, features)…")

        def waiting(said: str) -> None:
            progress.update(task, description=f"waiting for /readyz: {said[:120]}")

        try:
            result = lifecycle.up_serve(plain=plain, on_wait=waiting)
        except ServingNotReadyError as exc:
            console.print(f"[red]✗[/] {exc}")
            raise typer.Exit(1) from None
    console.print(serve_text(result))


def forecast(
    zone: str = typer.Option(..., "--zone", help="zone name, e.g. TAMPINES (`curl <url>/v1/zones` lists them)"),
    horizon: int = typer.Option(60, "--horizon", help="minutes ahead: one of training.horizons"),
) -> None:
    """Ask the running service for a zone's forecast (settings.serve_url; the API key header when set)."""
    from rich.console import Console

    from ridecast.config import get_settings
    from ridecast.stack.serving import ForecastRequestError, ServingNotRunningError, request_forecast
    from ridecast.views import forecast_table

    console = Console()
    try:
        forecasts = request_forecast(zone=zone, horizon=horizon)
    except (ServingNotRunningError, ForecastRequestError) as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None
    console.print(forecast_table(forecasts, get_settings().serve_url))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("forecast")(forecast)
