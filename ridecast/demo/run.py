"""``ridecast demo``: the whole pipeline on embedded defaults, start to finish, then the results.

History goes in as a backfill (the same feature SQL, in batch); then yesterday and today up to the wall clock
stream live through Kafka, with a few malformed events so the dead letters show, and land in Iceberg through the
streaming job (Iceberg's Flink sink). Yesterday is the day the results and the forecast scores are about; today so
far is what makes the forecasting service's answers fresh: its newest windows closed minutes ago, as on live
traffic. Just before the service is asked, the stream is topped up to the clock again.
Everything is deterministic by seed and idempotent: a second run reuses what the first one built (a backfill
of the same file is skipped; the stream resumes after the newest event already in silver), which is what keeps
it fast warm.

The history stops ``SEAM`` before the live day starts. HOP windows near a boundary would otherwise be computed
twice, partially, by the batch job and the streaming job; with the gap no window key comes from both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ridecast.config import Settings, get_settings

__all__ = ["DemoPlan", "plan", "run_demo"]

SGT = timezone(timedelta(hours=8))
SEAM = timedelta(hours=2)
SHOWCASE_ZONE = "DOWNTOWN_CORE"


@dataclass(frozen=True)
class DemoPlan:
    live_start: datetime  # the live day (yesterday in Singapore) ...
    live_end: datetime  # ... ends at midnight: the results and forecast scores are about this whole day
    history_start: datetime
    history_end: datetime
    seed: int
    scale: float
    speedup: float
    stream_end: datetime  # the stream goes on through today up to this moment (the wall clock at plan time)


def plan(history_days: int, seed: int = 42, scale: float = 1.0, speedup: float = 1440.0,
         now: datetime | None = None) -> DemoPlan:
    """The live day is yesterday in Singapore, streamed with today so far; the history is the ``history_days``
    before it (minus the seam)."""
    now = now or datetime.now(timezone.utc)
    today = now.astimezone(SGT).replace(hour=0, minute=0, second=0, microsecond=0)
    live_start = today - timedelta(days=1)
    history_end = live_start - SEAM
    return DemoPlan(live_start, today, history_end - timedelta(days=history_days), history_end, seed, scale, speedup,
                    now.replace(microsecond=0))


@dataclass
class _Step:
    console: Console
    n: int = 0
    timings: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, title: str) -> "_Step":
        self.n += 1
        self.title = title
        self.console.rule(f"[bold cyan]{self.n}. {title}")
        self._t0 = time.monotonic()
        return self

    def __enter__(self) -> "_Step":
        return self

    def __exit__(self, *exc: object) -> None:
        self.timings.append((self.title, time.monotonic() - self._t0))


def _sql_table(console: Console, title: str, sql: str, settings: Settings) -> list[dict]:
    from ridecast.sql import rich_table, run_sql

    result = run_sql(sql, settings)
    console.print(Panel.fit(sql, title="Trino SQL", border_style="dim"))
    table = rich_table(result)
    table.title = title
    console.print(table)
    return result.to_pylist()


def _ts(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _count_between(settings: Settings, ident: str, column: str, lo: datetime, hi: datetime) -> int:
    from ridecast.sql import run_sql

    res = run_sql(f"SELECT count(*) AS n FROM iceberg.{ident} WHERE {column} >= TIMESTAMP '{_ts(lo)} UTC' "
                  f"AND {column} < TIMESTAMP '{_ts(hi)} UTC'", settings)
    return int(res.to_pylist()[0]["n"])


def _newest_streamed(settings: Settings, lo: datetime, hi: datetime) -> datetime | None:
    """The newest event time in silver within ``[lo, hi]``: where a resumed stream starts (None: nothing yet)."""
    from ridecast.sql import run_sql

    res = run_sql(f"SELECT max(event_time) AS t FROM iceberg.silver.trip_events WHERE event_time >= "
                  f"TIMESTAMP '{_ts(lo)} UTC' AND event_time <= TIMESTAMP '{_ts(hi)} UTC'", settings)
    t = res.to_pylist()[0]["t"]
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=timezone.utc))


def _last_closed_window_end(settings: Settings, until: datetime) -> datetime:
    """The newest window end a stream that stops at ``until`` closes: the watermark (``until`` minus the allowed
    lateness) passes every window ending at or before it, and windows end on multiples of the slide."""
    slide = timedelta(minutes=settings.flink.slide_minutes)
    wm = until - timedelta(seconds=settings.flink.watermark_delay_s)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + (wm - epoch) // slide * slide


def _backfill_history(p: DemoPlan, settings: Settings, console: Console) -> None:
    from ridecast.sources.deliver import Target, deliver
    from ridecast.sources.simulate import simulate_events
    from ridecast.stack.pipeline import backfill

    name = f"demo-history-{p.seed}-{p.history_start:%Y%m%d}-{p.history_end:%Y%m%d%H}.jsonl"
    path = settings.state_dir / "backfill" / name
    if not path.exists():  # a warm rerun reuses the file: the same seed gives the same events
        with console.status(f"simulating {(p.history_end - p.history_start).days} days of history…"):
            d = deliver(simulate_events(p.history_start, p.history_end - p.history_start, seed=p.seed,
                                        scale=p.scale), Target.file, settings, path=path)
        console.print(f"simulated {d.written:,} events → {path}")
    result = backfill(path, settings)
    console.print(f"backfill: {result}")


def _hostile(zone: str, t_ms: int) -> list[bytes]:
    ok = {"event_id": "demo-bad", "schema_version": 1, "event_time_ms": t_ms, "event_type": "requested",
          "pickup_zone": zone}
    return [b"{this is not json", json.dumps({**ok, "pickup_zone": "ATLANTIS"}).encode(),
            json.dumps({**ok, "fare": "twelve"}).encode(), json.dumps({**ok, "surge": 99.0}).encode(),
            json.dumps({**ok, "event_time_ms": t_ms + 10 * 365 * 86_400_000}).encode()]


def _stream_live(p: DemoPlan, settings: Settings, console: Console, until: datetime) -> None:
    """Stream the simulated trips from the live day's start up to ``until`` (at most the wall clock), resuming
    after the newest event already in silver, so no event is sent twice and a warm rerun only tops up.

    Events after ``until`` are held back: a trip requested a minute ago has not been completed yet, and an event
    from the future would be rejected. The producer's closing heartbeat stops at the clock too, so the windows
    that are still open stay open for the next top-up (or for live traffic)."""
    from kafka import KafkaProducer

    from ridecast.sources.deliver import Target, deliver
    from ridecast.sources.simulate import simulate_events
    from ridecast.stack.broker import bootstrap_servers

    since = _newest_streamed(settings, p.live_start, until)
    if since is None:  # a first stream: with the malformed events the dead-letter table shows
        producer = KafkaProducer(bootstrap_servers=bootstrap_servers(settings), acks="all")
        for raw in _hostile(SHOWCASE_ZONE, int(p.live_start.timestamp() * 1000)):
            producer.send(settings.kafka.events_topic, key=b"demo-bad", value=raw)
        producer.flush()
        producer.close()
        start = p.live_start
    else:
        # from the day before ``since`` (the simulation is deterministic per local day): a trip requested before
        # midnight can still end after ``since``
        start = max(p.live_start, (since.astimezone(SGT) - timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                                                      microsecond=0))
    lo_ms = int(since.timestamp() * 1000) if since else -1
    hi_ms = int(until.timestamp() * 1000)
    events = (e for e in simulate_events(start, until - start, seed=p.seed + 1, scale=p.scale)
              if lo_ms < e["event_time_ms"] <= hi_ms)
    # closed up to ``until``, not to the clock at the end of the (sped-up) replay: the next top-up starts there
    stats = deliver(events, Target.kafka, settings, speedup=p.speedup, close_at=until, progress=True).produced
    if not stats.sent:
        console.print(f"silver already holds the stream up to {until.astimezone(SGT):%a %d %b %H:%M} SGT: "
                      "nothing to send")
        return
    first, last = (datetime.fromtimestamp(ms / 1000, SGT) for ms in (stats.first_event_ms, stats.last_event_ms))
    console.print(f"streamed {stats.sent:,} events ({first:%a %d %b %H:%M} – {last:%a %d %b %H:%M} SGT) + "
                  f"{stats.heartbeats:,} heartbeats at {stats.rate:,.0f}/s "
                  f"(speed-up {p.speedup:g}×: one simulated day per {86400 / p.speedup:.0f} s)")


def _settle_traffic(p: DemoPlan, settings: Settings, console: Console, timeout_s: float = 300) -> None:
    """Stop the live traffic an earlier demo left running, and wait until silver holds the last event on the
    events topic: the stream below resumes after the newest event in silver, and would send again what the
    feature job had read but not yet committed. Read from the topic, that event is right however the traffic
    ended (``ridecast down``, a crash, ``kill -9``)."""
    from ridecast.stack.traffic import newest_sent, stop_traffic
    from ridecast.views import spinner

    if stop_traffic(settings):
        console.print("stopped the live traffic of an earlier demo")
    last = newest_sent(settings)
    if last is None or last < p.live_start:  # nothing sent, or before the days this demo streams: no resume risk
        return
    with spinner(console) as bar:
        bar.add_task(f"waiting for its last event ({last.astimezone(SGT):%H:%M:%S} SGT) in silver", total=None)
        deadline = time.monotonic() + timeout_s
        # the query's bounds are whole seconds (_ts): ask up to the next one, or an event at .624 s is never "in"
        upto = last + timedelta(seconds=1)
        while (newest := _newest_streamed(settings, p.live_start, upto)) is None or newest < last:
            if time.monotonic() > deadline:
                raise SystemExit(f"the live traffic's last event ({last.isoformat()}) did not reach silver within "
                                 f"{timeout_s:.0f} s: see `ridecast status` and the feature job's log "
                                 f"({settings.log_dir}); resuming now could send events twice")
            time.sleep(2)


def _wait_landed(p: DemoPlan, settings: Settings, console: Console, until: datetime,
                 timeout_s: float = 600) -> None:
    """Until the newest window a stream up to ``until`` closes is committed to gold (the job commits at each
    checkpoint)."""
    from ridecast.views import spinner

    target = _last_closed_window_end(settings, until)
    with spinner(console) as bar:
        task = bar.add_task("waiting for the windows in gold.zone_features", total=None)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = _count_between(settings, "gold.zone_features", "window_end", target, target + timedelta(seconds=1))
            rows = _count_between(settings, "gold.zone_features", "window_end", p.live_start, target)
            bar.update(task, description=f"gold.zone_features: {rows:,} windows since "
                                         f"{p.live_start.astimezone(SGT):%a %d %b} landed")
            if n:
                return
            time.sleep(3)
    raise RuntimeError(f"the windows up to {target:%Y-%m-%d %H:%M} UTC did not land within {timeout_s:.0f}s; see "
                       f"`ridecast status` and {settings.log_dir}")


def _zone_curve_png(rows: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    hours = [r["hour_sgt"] or 24 for r in rows]  # the window ending at midnight closes hour 24
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(hours, [r["requests"] for r in rows], color="#4c78a8", label="requests (60-min window)")
    ax.plot(hours, [r["completions"] for r in rows], color="#f58518", marker="o", label="completions")
    ax.set_title(f"{SHOWCASE_ZONE}: demand features over the live day (Singapore time)")
    ax.set_xlabel("hour ending (SGT)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _show_results(p: DemoPlan, settings: Settings, console: Console) -> Path:
    lo, hi = _ts(p.live_start), _ts(p.live_end)
    _sql_table(console, f"Busiest zones on {p.live_start:%a %d %b %Y}", f"""
SELECT zone, sum(requests) AS requests, sum(completions) AS completions,
       round(avg(wait_mean), 1) AS avg_wait_s, round(sum(fare_sum)) AS fares
FROM iceberg.gold.zone_features
WHERE window_minutes = 60 AND minute(window_end) = 0
  AND window_end > TIMESTAMP '{lo} UTC' AND window_end <= TIMESTAMP '{hi} UTC'
GROUP BY zone ORDER BY requests DESC LIMIT 8""".strip(), settings)
    rows = _sql_table(console, f"{SHOWCASE_ZONE}, hour by hour", f"""
SELECT hour(window_end AT TIME ZONE 'Asia/Singapore') AS hour_sgt, requests, completions, cancellations,
       round(surge_mean, 2) AS surge, round(wait_mean) AS wait_s
FROM iceberg.gold.zone_features
WHERE zone = '{SHOWCASE_ZONE}' AND window_minutes = 60 AND minute(window_end) = 0
  AND window_end > TIMESTAMP '{lo} UTC' AND window_end <= TIMESTAMP '{hi} UTC'
ORDER BY window_end""".strip(), settings)
    _sql_table(console, "Dead letters (the pipeline kept running)", """
SELECT reason, count(*) AS events FROM iceberg.ops.dead_letters GROUP BY reason ORDER BY events DESC""".strip(),
               settings)
    return _zone_curve_png(rows, settings.state_dir / "reports" / "demo_zone_features.png")


def _serve_and_ask(p: DemoPlan, settings: Settings, console: Console, zone: str = "TAMPINES") -> str | None:
    """Top the stream up to the clock, start the forecasting service (left running) and ask it one zone's
    forecasts over HTTP; returns its URL."""
    from ridecast.stack import lifecycle
    from ridecast.stack.serving import ForecastRequestError, ServingNotReadyError, request_forecast
    from ridecast.stack.traffic import start_traffic, traffic_process
    from ridecast.views import forecast_table, serve_text

    now = datetime.now(timezone.utc).replace(microsecond=0)
    _stream_live(p, settings, console, now)  # the minutes since the live stream stopped: fresh windows
    # and from here on, each simulated event as it happens, until `make down`: the answers stay fresh after the demo
    traffic = start_traffic(settings, since=now, seed=p.seed + 1, scale=p.scale)
    console.print(f"live traffic: the simulated trips after {now.astimezone(SGT):%H:%M:%S} SGT are sent as they "
                  f"happen (pid {traffic['pid']}, log {traffic_process(settings).log_file}) until `make down`")
    _wait_landed(p, settings, console, now)
    try:
        with console.status("starting the forecasting service (Ray Serve: models from MLflow, features)…"):
            served = lifecycle.up_serve(settings)
    except ServingNotReadyError as exc:
        console.print(f"[red]✗[/] {exc}")
        return None
    console.print(serve_text(served, zone))
    try:
        forecasts = [f for h in settings.training.horizons for f in request_forecast(settings, zone, h)]
    except ForecastRequestError as exc:
        console.print(f"[red]✗[/] {exc}")
        return served.url
    console.print(forecast_table(forecasts, f"{served.url}/v1/forecast/{zone}"))
    if any(f["stale"] for f in forecasts):
        console.print(f"[yellow]stale[/]: the newest window closed longer ago than serving.max_feature_age_s "
                      f"({settings.serving.max_feature_age_s:g} s), so the service answers with the seasonal-naive "
                      "value and says so; see `ridecast status` and the feature job's log.")
    return served.url


def run_demo(*, history_days: int = 28, seed: int = 42, scale: float = 1.0, speedup: float = 1440.0,
             train: bool = True, settings: Settings | None = None) -> None:
    s = settings or get_settings()
    console = Console()
    step = _Step(console)
    p = plan(history_days, seed=seed, scale=scale, speedup=speedup)
    started = time.monotonic()
    console.print(Panel.fit(
        f"ridecast demo: {history_days} days of simulated Singapore history "
        f"({p.history_start:%d %b} – {p.history_end:%d %b}), then {p.live_start:%a %d %b} and today up to "
        f"{p.stream_end.astimezone(SGT):%H:%M} SGT streamed live",
        border_style="cyan"))

    with step("Embedded stack: broker, topics, Iceberg tables, feature job"):
        from ridecast.stack import lifecycle
        from ridecast.views import up_text

        with console.status("starting the embedded stack…"):
            started_stack = lifecycle.up(s)
        console.print(up_text(started_stack))
        _settle_traffic(p, s, console)
    with step(f"History: {history_days} days through the feature job in batch (backfill)"):
        _backfill_history(p, s, console)
    if train:
        with step("Train on the history: Ray XGBoost per horizon, backtest vs baselines, MLflow + promotion gate"):
            from ridecast.demo import forecast as demo_forecast

            demo_forecast.train_on_history(s, console, p)
    with step("Live: yesterday and today so far through Kafka → PyFlink → Iceberg"):
        _stream_live(p, s, console, p.stream_end)
        _wait_landed(p, s, console, p.stream_end)
    with step("Results (Trino-dialect SQL on the embedded engine)"):
        png = _show_results(p, s, console)
    if train:
        with step("Forecasts through the live day into gold.forecasts, scored against actuals; report"):
            demo_forecast.run(s, console, p)
    serve_url = None
    if train:
        with step("Online: the forecasting service on Ray Serve answers over HTTP (left running)"):
            serve_url = _serve_and_ask(p, s, console)
    summary = Table(title="demo timings", show_header=False)
    for title, secs in step.timings:
        summary.add_row(title, f"{secs:,.0f} s")
    summary.add_row("[bold]total", f"[bold]{time.monotonic() - started:,.0f} s")
    console.print(summary)
    console.print(Panel(
        f"state dir        {s.state_dir}\n"
        f"Iceberg catalog  {s.catalog_uri}\n"
        f"warehouse        {s.warehouse}\n"
        f"logs             {s.log_dir}\n"
        f"zone curve       {png}\n"
        f"forecast report  {s.ml_dir / 'report' / 'report.html'}\n"
        f"MLflow           {s.mlflow_tracking_uri}\n"
        + (f"forecast API     {serve_url}/docs   (.venv/bin/ridecast forecast --zone TAMPINES)\n" if serve_url else "")
        + "try              .venv/bin/ridecast sql \"SELECT * FROM iceberg.gold.zone_features LIMIT 5\"\n"
        "stop             make down   (or .venv/bin/ridecast down; it stops the service and the live traffic too)",
        title="where the data lives", border_style="green"))
