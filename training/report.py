"""``ridecast report``: one self-contained HTML file (PNGs embedded as data URIs, also written beside it).

Sources: the last training run's backtest (``<state_dir>/ml/last_backtest.parquet``, also an MLflow artifact),
``gold.forecast_accuracy`` for live accuracy once forecasts have been scored, and ``ops.model_promotions``.
Plots: forecast vs actual for chosen zones, error by hour of day, error by zone, accuracy over time, and the
baseline comparison per horizon.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from training.baselines import BASELINES
from training.metrics import breakdown

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["backtest_plots", "write_report"]

_LABELS = {"model": "XGBoost (champion candidate)", "seasonal_naive": "seasonal naive (last week)",
           "persistence": "persistence (last window)", "hour_of_week_mean": "hour-of-week mean"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _daily_wape(df: pd.DataFrame, tz: str, cols: Sequence[str], time_col: str = "cutoff", y: str = "y") -> pd.DataFrame:
    day = pd.to_datetime(df[time_col], utc=True).dt.tz_convert(tz).dt.date
    g = df.assign(_day=day).groupby("_day")
    out = {c: g.apply(lambda x, c=c: np.abs(x[c] - x[y]).sum() / max(x[y].abs().sum(), 1e-9)) for c in cols}
    return pd.DataFrame(out)


def backtest_plots(
    bt: pd.DataFrame, outdir: Path, zones: Sequence[str] | None = None, tz: str = "Asia/Singapore"
) -> list[Path]:
    """Write the backtest PNGs into ``outdir``; returns their paths (in display order)."""
    plt = _plt()
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    horizons = sorted(bt["horizon_min"].unique())
    hmax = horizons[-1]
    cols = ["model", *BASELINES]

    # 1. forecast vs actual for chosen zones (busiest by default), longest horizon, last 3 days
    sub = bt[bt["horizon_min"] == hmax]
    if not zones:
        zones = list(sub.groupby("zone")["y"].sum().sort_values(ascending=False).index[:4])
    last = sub["cutoff"].max() - pd.Timedelta(days=3)
    fig, axes = plt.subplots(len(zones), 1, figsize=(11, 2.6 * len(zones)), sharex=True, squeeze=False)
    for ax, z in zip(axes[:, 0], zones):
        d = sub[(sub["zone"] == z) & (sub["cutoff"] >= last)].sort_values("cutoff")
        t = d["cutoff"].dt.tz_convert(tz)
        ax.plot(t, d["y"], color="black", lw=1.2, label="actual")
        ax.plot(t, d["model"], color="tab:blue", lw=1.0, label=_LABELS["model"])
        ax.plot(t, d["seasonal_naive"], color="tab:orange", lw=0.8, alpha=0.7, label=_LABELS["seasonal_naive"])
        ax.set_title(f"{z}: requests in the next {hmax} min", fontsize=9)
        ax.set_ylabel("requests")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    paths.append(outdir / "forecast_vs_actual.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    # 2. error by hour of day, per horizon
    by_hour = breakdown(bt, cols, ["horizon_min", "hour"])
    fig, axes = plt.subplots(1, len(horizons), figsize=(4.2 * len(horizons), 3.2), squeeze=False, sharey=True)
    for ax, h in zip(axes[0], horizons):
        for c in cols:
            d = by_hour[(by_hour["horizon_min"] == h) & (by_hour["model"] == c)]
            ax.plot(d["hour"], d["wape"], marker=".", lw=1.5 if c == "model" else 0.9, label=_LABELS[c])
        ax.set_title(f"WAPE by local hour, h={h} min", fontsize=9)
        ax.set_xlabel("hour of day")
    axes[0, 0].set_ylabel("WAPE")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(outdir / "error_by_hour.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    # 3. error by zone (longest horizon)
    by_zone = breakdown(sub, ["model", "seasonal_naive"], ["zone"]).pivot(index="zone", columns="model", values="wape")
    by_zone = by_zone.sort_values("model", ascending=False).head(30)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    x = np.arange(len(by_zone))
    ax.bar(x - 0.2, by_zone["model"], 0.4, label=_LABELS["model"])
    ax.bar(x + 0.2, by_zone["seasonal_naive"], 0.4, label=_LABELS["seasonal_naive"])
    ax.set_xticks(x, by_zone.index, rotation=70, fontsize=7)
    ax.set_ylabel("WAPE")
    ax.set_title(f"WAPE by zone (worst 30), h={hmax} min", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(outdir / "error_by_zone.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    # 4. baseline comparison
    by_h = breakdown(bt, cols, ["horizon_min"]).pivot(index="horizon_min", columns="model", values="wape")[cols]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(by_h))
    for i, c in enumerate(cols):
        ax.bar(x + (i - 1.5) * 0.2, by_h[c], 0.2, label=_LABELS[c])
    ax.set_xticks(x, [f"{h} min" for h in by_h.index])
    ax.set_ylabel("backtest WAPE (lower is better)")
    ax.set_title("Model vs baselines on the same rolling-origin backtest", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(outdir / "baseline_comparison.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def _accuracy_over_time(bt: pd.DataFrame | None, live: pd.DataFrame | None, outdir: Path, tz: str) -> Path | None:
    plt = _plt()
    if (bt is None or bt.empty) and (live is None or live.empty):
        return None
    fig, ax = plt.subplots(figsize=(11, 3.2))
    if bt is not None and not bt.empty:
        for h in sorted(bt["horizon_min"].unique()):
            d = _daily_wape(bt[bt["horizon_min"] == h], tz, ["model", "seasonal_naive"])
            ax.plot(d.index, d["model"], marker="o", label=f"backtest model h={h}")
            ax.plot(d.index, d["seasonal_naive"], ls="--", alpha=0.6, label=f"backtest seasonal naive h={h}")
    if live is not None and not live.empty:
        for h in sorted(live["horizon_min"].unique()):
            d = _daily_wape(live[live["horizon_min"] == h], tz, ["predicted_requests"], "target_start",
                            "actual_requests")
            ax.plot(d.index, d["predicted_requests"], marker="s", lw=2, label=f"live forecasts h={h}")
    ax.set_ylabel("daily WAPE")
    ax.set_title("Accuracy over time", fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    p = outdir / "accuracy_over_time.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0, classes="t")


def write_report(settings: "Settings", out: Path | None = None, zones: Sequence[str] | None = None) -> Path:
    """Write the HTML report (and its PNGs beside it); returns the HTML path."""
    from training.lake_io import read_table

    out = Path(out) if out else settings.ml_dir / "report" / "report.html"
    outdir = out.parent
    outdir.mkdir(parents=True, exist_ok=True)
    tz = settings.training.timezone
    bt_path = settings.ml_dir / "last_backtest.parquet"
    bt = pd.read_parquet(bt_path) if bt_path.exists() else None
    live = read_table(settings, "gold.forecast_accuracy")
    promos = read_table(settings, "ops.model_promotions")
    if bt is None and live.empty:
        raise RuntimeError("nothing to report: run `ridecast train` (and `ridecast forecast-batch`) first")
    sections: list[str] = []
    pngs: list[Path] = []
    if bt is not None:
        bt["cutoff"] = pd.to_datetime(bt["cutoff"], utc=True)
        pngs += backtest_plots(bt, outdir, zones, tz)
        summary = breakdown(bt, ["model", *BASELINES], ["horizon_min"])
        piv = summary.pivot(index="horizon_min", columns="model", values="wape").reset_index()
        piv["gain_vs_seasonal_naive"] = 1 - piv["model"] / piv["seasonal_naive"]
        piv["gain_vs_best_baseline"] = 1 - piv["model"] / piv[list(BASELINES)].min(axis=1)
        sections.append("<h2>Backtest: WAPE per horizon</h2>" + _table(piv))
        sections.append(
            "<h2>Backtest: all metrics per horizon</h2>"
            + _table(summary[["horizon_min", "model", "mae", "rmse", "wape", "mase", "n"]])
        )
    acc = _accuracy_over_time(bt, live, outdir, tz)
    if acc:
        pngs.append(acc)
    if not live.empty:
        g = live.groupby("horizon_min")
        live_t = pd.DataFrame(
            {"forecasts": g.size(), "wape": g["abs_error"].sum() / g["actual_requests"].sum().clip(lower=1e-9),
             "mae": g["abs_error"].mean()}
        ).reset_index()
        sections.append("<h2>Live forecasts scored against actuals (gold.forecast_accuracy)</h2>" + _table(live_t))
    if not promos.empty:
        cols = ["decided_at", "model_name", "version", "previous_champion_version", "decision", "wape",
                "champion_wape", "best_baseline", "best_baseline_wape", "actor", "reason"]
        sections.append("<h2>Promotion history (ops.model_promotions)</h2>"
                        + _table(promos.sort_values("decided_at")[cols]))
    imgs = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(p.stem.replace("_", " "))}'
        "</figcaption></figure>"
        for p in pngs
    )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>ridecast forecast report</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}img{{max-width:100%}}
table.t{{border-collapse:collapse;font-size:12px}}table.t td,table.t th{{padding:3px 8px;border-bottom:1px solid #ddd}}
figure{{margin:1.5em 0}}figcaption{{font-size:12px;color:#666}}</style></head><body>
<h1>ridecast demand forecasts</h1>
<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}. WAPE = sum|error| / sum(actual). MASE = MAE / MAE of
seasonal naive on the same rows. Times are local ({html.escape(tz)}).</p>
{''.join(sections)}
{imgs}
</body></html>"""
    out.write_text(doc, encoding="utf-8")
    return out
