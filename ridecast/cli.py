"""``ridecast``: one CLI for the whole platform.

Each area registers its commands from its own module in :mod:`ridecast.commands` (``register(app)``), and
imports its heavy dependencies inside the command body, so ``ridecast --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="ridecast",
    help="Real-time demand forecasting lakehouse: Kafka -> PyFlink -> Iceberg -> SQL, forecasts on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Modules under ridecast.commands, each with register(app). Order is the order of `ridecast --help`.
COMMAND_MODULES = ("stack", "data", "sql", "maintain", "ml", "serve")

for _name in COMMAND_MODULES:
    importlib.import_module(f"ridecast.commands.{_name}").register(app)


@app.callback()
def _settings_first() -> None:
    # Read once before any command: a wrong RIDECAST_* value or ridecast.toml entry is one clear error that names
    # the variable, not a traceback from whichever component first reads it.
    from pydantic import ValidationError

    from ridecast.config import explain_invalid, get_settings

    try:
        get_settings()
    except ValidationError as exc:
        typer.echo(explain_invalid(exc), err=True)
        raise typer.Exit(2) from None


def main() -> None:  # pragma: no cover - console entry point
    app()
