"""``ridecast up | down | status | demo``: the embedded stack's lifecycle (:mod:`ridecast.stack.lifecycle`)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def up(
    no_job: bool = typer.Option(False, "--no-job", help="start only the broker and the tables"),
    trino: bool = typer.Option(False, "--trino", help="also start the embedded Trino server over the catalog"),
) -> None:
    """Start the broker, create topics and tables, start the feature job (it writes Iceberg itself)."""
    from rich.console import Console

    from ridecast.stack import lifecycle
    from ridecast.views import trino_text, up_text

    console = Console()
    with console.status("starting the embedded stack…"):
        result = lifecycle.up(job=not no_job)
    console.print(up_text(result))
    if trino:
        with console.status("starting Trino (a minute or more)…"):
            console.print(trino_text(lifecycle.up_trino()))


def down() -> None:
    """Stop everything `up` started, Trino included (checkpoints and tables stay)."""
    from rich.console import Console

    from ridecast.stack import lifecycle
    from ridecast.views import down_text

    Console().print(down_text(lifecycle.down()))


def status() -> None:
    """What runs, the newest checkpoint, and each table's rows and last commit."""
    from rich.console import Console

    from ridecast.stack import lifecycle
    from ridecast.views import status_view

    Console().print(status_view(lifecycle.status()))


def demo(
    history_days: int = typer.Option(28, min=0, help="days of simulated history to backfill"),
    seed: int = typer.Option(42, help="simulation seed"),
    scale: float = typer.Option(1.0, min=0.01, help="demand multiplier (1.0 ≈ 50k requests a weekday)"),
    speedup: float = typer.Option(1440.0, min=1.0, help="live day pacing (1440 = one day per minute)"),
    train: bool = typer.Option(True, help="also train, register and forecast"),
) -> None:
    """Run the whole pipeline end to end on embedded defaults and show the results."""
    from ridecast.demo import run_demo

    run_demo(history_days=history_days, seed=seed, scale=scale, speedup=speedup, train=train)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(demo)
