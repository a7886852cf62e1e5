"""``ridecast train | forecast-batch | report``: the forecasting commands (issue #3).

Heavy imports (Ray, MLflow, XGBoost, matplotlib) happen inside the command bodies so ``ridecast --help`` stays
fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["forecast_batch_cmd", "register", "report_cmd", "train_cmd"]


def _horizons(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise typer.BadParameter("horizons are comma-separated minutes, e.g. 15,30,60") from None


def train_cmd(
    horizons: Optional[str] = typer.Option(None, help="comma-separated minutes; default training.horizons"),
    workers: Optional[int] = typer.Option(None, min=1, help="Ray Train workers; default training.workers"),
    local: bool = typer.Option(False, "--local", help="plain single-process xgboost.train instead of Ray"),
    on_cluster: bool = typer.Option(False, "--on-cluster", help="submit as a KubeRay RayJob to the Kubernetes "
                                    "cluster in settings.cluster and follow it to the end"),
) -> None:
    """Build the point-in-time training set, backtest, train one model per horizon, register and gate."""
    from rich.console import Console

    if on_cluster:
        if local:
            raise typer.BadParameter("--local trains in this process; it cannot go with --on-cluster")
        args = (["--horizons", ",".join(map(str, _horizons(horizons)))] if horizons else []) + (
            ["--workers", str(workers)] if workers else [])
        _train_on_cluster(tuple(args))
        return

    import training
    from ridecast.views import spinner, train_view

    console = Console()
    with spinner(console) as prog:
        task = prog.add_task("training", total=None)
        result = training.train(
            horizons=_horizons(horizons),
            workers=workers,
            backend="local" if local else "ray",
            progress=lambda msg: prog.update(task, description=msg),
        )
    console.print(train_view(result))


def _train_on_cluster(args: tuple[str, ...]) -> None:
    """Create the RayJob, print each status change, exit 1 with the operator's message when it fails (or is
    deleted, or outlasts cluster.follow_timeout_s)."""
    from rich.console import Console

    from ridecast.stack.cluster import (
        ClusterError,
        RayJobDeletedError,
        RayJobFailedError,
        RayJobTimeoutError,
        train_on_cluster,
    )
    from ridecast.views import rayjob_line

    console = Console()
    try:
        r = train_on_cluster(args=args, on_change=lambda st: console.print(rayjob_line(st), highlight=False))
    except (RayJobFailedError, RayJobDeletedError, RayJobTimeoutError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except (ClusterError, ImportError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    console.print(f"[green]✓[/] RayJob {r.state.name} in {r.namespace} succeeded in {r.seconds:.0f}s "
                  f"(Ray cluster {r.state.ray_cluster or '-'}); the models are in MLflow", highlight=False)


def forecast_batch_cmd(
    at: Optional[str] = typer.Option(None, help="cut-off (ISO time, UTC if naive); default latest closed window"),
) -> None:
    """Forecast every zone and horizon with the champions into iceberg.gold.forecasts; score closed ones."""
    from rich.console import Console

    import training

    console = Console()
    with console.status("forecasting from the champions"):
        r = training.forecast_batch(at=at)
    for h, why in r.skipped.items():
        console.print(f"[yellow]h={h}: {why}[/]")
    versions = ", ".join(f"h{h}=v{v}" for h, v in r.versions.items())
    console.print(
        f"{r.rows} forecasts at {r.feature_time.isoformat()} ({versions}); "
        f"{r.accuracy_rows} newly scored in gold.forecast_accuracy; {r.seconds:.1f}s"
    )
    if not r.versions:
        raise typer.Exit(1)


def report_cmd(
    out: Optional[Path] = typer.Option(None, help="HTML path; default <state_dir>/ml/report/report.html"),
) -> None:
    """Write a self-contained HTML report (plus PNGs): forecast vs actual, errors, baselines, promotions."""
    from rich.console import Console

    import training

    console = Console()
    with console.status("rendering the report"):
        path = training.write_report(out=out)
    console.print(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("forecast-batch")(forecast_batch_cmd)
    app.command("report")(report_cmd)
