"""PNG plots for the Dagster UI, embedded in markdown metadata as base64 data URIs.

matplotlib's object API with the Agg canvas (no pyplot global state, safe in threads, no display needed).
Each plot shows the few series that matter most as small multiples: anomalies marked on the scored window,
the forecast band against the failure threshold, the fitted trend line.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autopilot_pipeline.aiops.risk_report import risk_name

__all__ = ["anomaly_plot", "forecast_plot", "markdown_image", "trend_plot"]

HOUR = timedelta(hours=1)
_PANEL_HEIGHT = 2.1
_WIDTH = 9.5
_DPI = 72


def markdown_image(fig: Figure, alt: str) -> str:
    """The figure as a markdown image with a base64 PNG data URI."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def _figure(panels: int) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(_WIDTH, _PANEL_HEIGHT * panels), layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def _style(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def anomaly_plot(scores: pl.DataFrame, max_panels: int = 6) -> str | None:
    """Value and expected value over the scored window, anomalies in red; the series with the most confident
    anomalies first (or the highest scores when there are none). None when nothing was scored."""
    if scores.is_empty():
        return None
    ranked = (
        scores.group_by("component", "metric")
        .agg(
            pl.col("is_anomaly").sum().alias("n"),
            pl.col("confidence").filter(pl.col("is_anomaly")).max().fill_null(0).alias("best"),
            pl.col("anomaly_score").max().alias("top_score"),
        )
        .sort(["n", "best", "top_score", "component", "metric"], descending=[True, True, True, False, False])
        .head(max_panels)
    )
    fig, axes = _figure(ranked.height)
    for ax, (comp, metric, n, _best, _top) in zip(axes, ranked.iter_rows(), strict=True):
        part = scores.filter((pl.col("component") == comp) & (pl.col("metric") == metric)).sort(
            "bucket_start"
        )
        t = part["bucket_start"].to_list()
        ax.plot(t, part["actual_value"].to_list(), lw=1.0, color="tab:blue", label="value")
        ax.plot(t, part["expected_value"].to_list(), lw=0.8, ls="--", color="tab:gray", label="expected")
        hits = part.filter(pl.col("is_anomaly"))
        if hits.height:
            ax.scatter(
                hits["bucket_start"].to_list(),
                hits["actual_value"].to_list(),
                color="tab:red",
                s=18,
                zorder=3,
                label="anomaly",
            )
        _style(ax, f"{comp} · {metric} — {n} anomal{'y' if n == 1 else 'ies'}")
    axes[0].legend(fontsize=7, loc="upper left")
    return markdown_image(fig, "anomalies")


def _urgency(p: Mapping[str, Any]) -> tuple[float, float]:
    """Highest risk first; among equal risks, the forecast closest to its threshold in units of its own
    95 % band (how many band widths away the crossing is)."""
    band = list(p["forecast"])
    thr = float(p.get("threshold") or 0.0)
    width = max(max(float(b["upper_95"]) - float(b["lower_95"]) for b in band), 1e-12)
    if p.get("direction") == "below":
        gap = min(float(b["forecast"]) for b in band) - thr
    else:
        gap = thr - max(float(b["forecast"]) for b in band)
    return (-float(p["probability"]), gap / width)


def forecast_plot(
    series: pl.DataFrame,
    predictions: Sequence[Mapping[str, Any]],
    history_hours: int = 72,
    max_panels: int = 6,
) -> str | None:
    """The last ``history_hours`` of each series, the 24-hour forecast with its 80 % and 95 % bands and the
    failure threshold; the highest risks first."""
    shown = sorted((p for p in predictions if p.get("forecast")), key=_urgency)[:max_panels]
    if not shown:
        return None
    fig, axes = _figure(len(shown))
    for ax, p in zip(axes, shown, strict=True):
        band = pl.DataFrame(list(p["forecast"])).with_columns(
            pl.col("bucket_start").cast(pl.String).str.to_datetime(time_zone="UTC")
        )
        start: datetime = band["bucket_start"][0] - history_hours * HOUR
        hist = series.filter(
            (pl.col("component") == p["component"])
            & (pl.col("metric") == p["metric"])
            & (pl.col("bucket_start") >= pl.lit(start).cast(pl.Datetime("us", "UTC")))
        ).sort("bucket_start")
        t = band["bucket_start"].to_list()
        ax.plot(
            hist["bucket_start"].to_list(), hist["value"].to_list(), lw=1.0, color="tab:blue", label="history"
        )
        ax.fill_between(
            t,
            band["lower_95"].to_list(),
            band["upper_95"].to_list(),
            color="tab:orange",
            alpha=0.18,
            label="95 %",
        )
        ax.fill_between(
            t,
            band["lower_80"].to_list(),
            band["upper_80"].to_list(),
            color="tab:orange",
            alpha=0.35,
            label="80 %",
        )
        ax.plot(t, band["forecast"].to_list(), lw=1.0, color="tab:orange", label="forecast")
        if p.get("threshold") is not None:
            ax.axhline(float(p["threshold"]), color="tab:red", lw=0.8, ls="--", label="threshold")
        _style(
            ax,
            f"{p['component']} · {p['metric']} — {risk_name(p)} {float(p['probability']):.2f} ({p.get('method', '')})",
        )
    axes[0].legend(fontsize=7, loc="upper left", ncols=5)
    return markdown_image(fig, "forecasts")


def trend_plot(series: pl.DataFrame, trends: pl.DataFrame, max_panels: int = 6) -> str | None:
    """Each trend's window of data with its OLS line (through the means); degrading, then improving, then
    the most significant stable series."""
    if trends.is_empty():
        return None
    order = {"degrading": 0, "improving": 1, "stable": 2}
    ranked = (
        trends.with_columns(
            pl.col("trend").replace_strict(order, default=3, return_dtype=pl.Int64).alias("_o")
        )
        .sort(["_o", "window_hours", "p_value"], descending=[False, True, False])
        .head(max_panels)
    )
    fig, axes = _figure(ranked.height)
    for ax, r in zip(axes, ranked.iter_rows(named=True), strict=True):
        part = series.filter(
            (pl.col("component") == r["component"])
            & (pl.col("metric") == r["metric"])
            & (pl.col("bucket_start") >= pl.lit(r["window_start"]).cast(pl.Datetime("us", "UTC")))
            & (pl.col("bucket_start") <= pl.lit(r["window_end"]).cast(pl.Datetime("us", "UTC")))
        ).sort("bucket_start")
        if part.is_empty():
            continue
        hours = ((part["bucket_start"] - part["bucket_start"][0]).dt.total_seconds() / 3600).to_numpy()
        y = part["value"].to_numpy()
        slope = r["slope"] or 0.0
        line = y.mean() + slope * (hours - hours.mean())
        colour = {"degrading": "tab:red", "improving": "tab:green"}.get(r["trend"], "tab:gray")
        ax.plot(part["bucket_start"].to_list(), y, lw=0.9, color="tab:blue")
        ax.plot(part["bucket_start"].to_list(), line, lw=1.4, color=colour)
        p = r["p_value"]
        _style(
            ax,
            f"{r['component']} · {r['metric']} — {r['trend']} over {r['window_hours']} h "
            f"({(r['slope_per_day'] or 0):+.3g}/day, p = {p:.2g})"
            if p is not None
            else r["trend"],
        )
    return markdown_image(fig, "trends")
