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


def main() -> None:  # pragma: no cover - console entry point
    app()
