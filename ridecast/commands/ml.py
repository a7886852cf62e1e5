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
) -> None:
    """Build the point-in-time training set, backtest, train one model per horizon, register and gate."""
    from rich.console import Console

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
