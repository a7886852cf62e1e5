"""``ridecast up | down | status | demo``: the embedded stack's lifecycle (:mod:`ridecast.stack.lifecycle`), and
``status --cluster``: the same question asked of a Kubernetes deployment (:mod:`ridecast.stack.cluster`)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def up(
    no_job: bool = typer.Option(False, "--no-job", help="start only the broker and the tables"),
    trino: bool = typer.Option(False, "--trino", help="also start the embedded Trino server over the catalog"),
    schedule: bool = typer.Option(False, "--schedule", help="also run settings.schedules here (retrain, forecast "
                                  "refresh, maintenance at their cron times; the chart's CronJobs on Kubernetes)"),
) -> None:
    """Start the broker, create topics and tables, start the feature job (it writes Iceberg itself)."""
    from rich.console import Console

    from ridecast.stack import lifecycle
    from ridecast.views import schedule_text, trino_text, up_text

    console = Console()
    with console.status("starting the embedded stack…"):
        result = lifecycle.up(job=not no_job)
    console.print(up_text(result))
    if trino:
        with console.status("starting Trino (a minute or more)…"):
            console.print(trino_text(lifecycle.up_trino()))
    if schedule:
        console.print(schedule_text(lifecycle.up_schedule()))


def down() -> None:
    """Stop everything `up` started, Trino and the scheduler included (checkpoints and tables stay)."""
    from rich.console import Console

    from ridecast.stack import lifecycle
    from ridecast.views import down_text

    Console().print(down_text(lifecycle.down()))


def status(
    cluster: bool = typer.Option(False, "--cluster", help="read the FlinkDeployment, RayService and Kafka of the "
                                 "Kubernetes deployment (settings.cluster) instead; exit 1 unless all are ready"),
) -> None:
    """What runs, the newest checkpoint, each table's rows and last commit, and the schedules' runs."""
    from rich.console import Console

    if cluster:
        _cluster_status()
        return
    from ridecast.stack import lifecycle
    from ridecast.views import status_view

    Console().print(status_view(lifecycle.status()))


def _cluster_status() -> None:
    from rich.console import Console

    from ridecast.stack.cluster import ClusterError, cluster_status
    from ridecast.views import cluster_status_table

    try:
        result = cluster_status()
    except (ClusterError, ImportError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    Console().print(cluster_status_table(result))
    if not result.ready:
        raise typer.Exit(1)


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
