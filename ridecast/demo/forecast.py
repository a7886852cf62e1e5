"""The demo's forecasting steps: train on the history, then forecast through the live day and score it.

The models are trained before the live day streams in, so every forecast the demo scores is out of sample:
the accuracy it prints is what an operations team would have seen that day, not a fit to data the model saw.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from ridecast.config import Settings
    from ridecast.demo.run import DemoPlan

__all__ = ["champions_cover", "forecast_through", "show_forecasts", "train_on_history"]


def champions_cover(settings: "Settings", until: datetime) -> bool:
    """True when every horizon has a champion trained on data up to ``until`` (a warm rerun trains nothing)."""
    from mlflow.tracking import MlflowClient

    from training.registry import _champion_version, configure_mlflow, model_name

    configure_mlflow(settings)
    client = MlflowClient()
    for h in settings.training.horizons:
        try:
            mv = _champion_version(client, model_name(settings, h))
        except Exception:  # no registered model yet
            return False
        trained = mv.tags.get("trained_until") if mv is not None else None
        if not trained or datetime.fromisoformat(trained) < until - timedelta(hours=6):
            return False
    return True


def train_on_history(settings: "Settings", console: Console, p: "DemoPlan") -> None:
    import training
    from ridecast.views import spinner, train_view

    if champions_cover(settings, p.history_end):
        console.print("champions trained on this history are registered already: not retraining "
                      "(`ridecast train` retrains and runs the promotion gate)")
        return
    with spinner(console) as prog:
        task = prog.add_task("training", total=None)
        result = training.train(settings, progress=lambda msg: prog.update(task, description=msg))
    console.print(train_view(result))


def forecast_through(settings: "Settings", console: Console, p: "DemoPlan", every: timedelta) -> None:
    """Forecast at cut-offs across the live day (scored against its actuals), then from the newest data."""
    from rich.progress import Progress

    import training

    cutoffs = []
    t = p.live_start + every
    while t < p.live_end:
        cutoffs.append(t)
        t += every
    with Progress(console=console) as bar:
        task = bar.add_task("forecasting through the live day", total=len(cutoffs) + 1)
        for at in cutoffs:
            training.forecast_batch(settings, at=at)
            bar.advance(task)
        latest = training.forecast_batch(settings)
        bar.advance(task)
    console.print(f"{len(cutoffs) + 1} forecast batches; newest from {latest.feature_time:%Y-%m-%d %H:%M} UTC "
                  f"({latest.rows} forecasts, models {', '.join(f'{h} min v{v}' for h, v in latest.versions.items())})")


def show_forecasts(settings: "Settings", console: Console, p: "DemoPlan") -> None:
    import training
    from ridecast.demo.run import _sql_table, _ts

    _sql_table(console, "Which zones will be busiest in the next hour", """
SELECT zone, round(predicted_requests, 1) AS predicted_requests, target_start, model_version
FROM iceberg.gold.forecasts
WHERE horizon_min = 60
  AND feature_time = (SELECT max(feature_time) FROM iceberg.gold.forecasts WHERE horizon_min = 60)
ORDER BY predicted_requests DESC
LIMIT 8""".strip(), settings)
    _sql_table(console, f"How accurate were we on {p.live_start:%a %d %b} (out of sample), by horizon", f"""
SELECT horizon_min, count(*) AS forecasts,
       round(sum(abs_error) / nullif(sum(actual_requests), 0), 3) AS wape,
       sum(actual_requests) AS actual, round(sum(predicted_requests)) AS predicted
FROM iceberg.gold.forecast_accuracy
WHERE target_start >= TIMESTAMP '{_ts(p.live_start)} UTC' AND target_start < TIMESTAMP '{_ts(p.live_end)} UTC'
GROUP BY horizon_min ORDER BY horizon_min""".strip(), settings)
    with console.status("rendering the report"):
        path = training.write_report(settings)
    console.print(f"report: {path}")


def run(settings: "Settings", console: Console, p: "DemoPlan") -> None:  # pragma: no cover - via run_demo
    forecast_through(settings, console, p, every=timedelta(hours=2))
    show_forecasts(settings, console, p)
