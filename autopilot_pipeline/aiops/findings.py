"""Anomaly findings in the seed's ``detect_anomalies`` shape: score every (component, metric) series of a
long frame with the detector and report its anomalies with direction by metric kind, severity and reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import polars as pl

from autopilot_pipeline.aiops.anomaly import AnomalyConfig, Direction, reason_text, score_batch

_KIND_LABEL = {
    "latency": "Response time",
    "error_rate": "Error rate",
    "uptime": "Uptime",
    "degraded": "Degraded share",
}


def metric_kind(metric: str) -> str:
    """Classify a metric name: latency, error_rate, error_count, uptime, degraded (the share of degraded
    checks) or custom (decides defaults)."""
    m = metric.lower()
    if "uptime" in m or "availability" in m:
        return "uptime"
    if "degraded" in m:
        return "degraded"
    if "error" in m or "fail" in m:
        return "error_rate" if ("ratio" in m or "rate" in m or "pct" in m) else "error_count"
    if "response" in m or "latency" in m or m.endswith("_ms") or m.startswith("p9") or "duration" in m:
        return "latency"
    return "custom"


_DEFAULT_DIRECTION: dict[str, Direction] = {
    "latency": "up",
    "error_rate": "up",
    "error_count": "up",
    "uptime": "down",
    "degraded": "up",
    "custom": "both",
}


def _label(metric: str) -> str:
    kind = metric_kind(metric)
    if kind == "error_count":
        return "Error count"
    return _KIND_LABEL.get(kind, metric.replace("_", " ").capitalize())


def _severity(confidence: float, ratio: float | None) -> str:
    if ratio is not None and ratio >= 10:
        return "critical"
    if confidence >= 0.99:
        return "critical"
    if confidence >= 0.95 or (ratio is not None and ratio >= 5):
        return "high"
    if confidence >= 0.8:
        return "medium"
    return "low"


def detect_anomalies(
    frame: pl.DataFrame,
    config: AnomalyConfig | None = None,
    *,
    directions: dict[str, Direction] | None = None,
    error_ratio_multiple: float = 3.0,
    error_ratio_floor: float = 0.01,
    since: datetime | None = None,
    only_anomalies: bool = True,
) -> pl.DataFrame:
    """Score every (component, metric) series of a long frame and return its anomalies in the seed shape.

    ``frame`` has columns component, metric, bucket_start, value. Directions default by metric kind
    (latency and errors: only increases; uptime: only drops; custom: both) and can be overridden per metric
    name. For error-ratio metrics the seed's rule also applies: value > ``error_ratio_multiple`` x baseline,
    with the baseline floored at ``error_ratio_floor`` so 0 -> 0.2 % is not "infinitely many times" normal.
    ``since`` keeps only rows at or after it (history before it still trains the detector).

    Columns: component, metric, timestamp, isAnomaly, confidence, reason, expectedValue, actualValue,
    severity, anomaly_score, robust_z, method.
    """
    cfg = config or AnomalyConfig()
    schema = {
        "component": pl.String,
        "metric": pl.String,
        "timestamp": pl.Datetime("us", "UTC"),
        "isAnomaly": pl.Boolean,
        "confidence": pl.Float64,
        "reason": pl.String,
        "expectedValue": pl.Float64,
        "actualValue": pl.Float64,
        "severity": pl.String,
        "anomaly_score": pl.Float64,
        "robust_z": pl.Float64,
        "method": pl.String,
    }
    missing = {"component", "metric", "bucket_start", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"detect_anomalies needs columns {sorted(missing)}")
    df = (
        frame.select("component", "metric", "bucket_start", pl.col("value").cast(pl.Float64))
        .with_columns(pl.col("bucket_start").cast(pl.Datetime("us", "UTC")))
        .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
        .sort("component", "metric", "bucket_start")
    )
    if df.is_empty():
        return pl.DataFrame(schema=schema)
    directions = directions or {}
    outs = []
    metric_parts = (
        df.group_by(["metric"], maintain_order=True)
        if df["metric"].n_unique() > 1
        else [((df["metric"][0],), df)]
    )
    for (metric,), part in metric_parts:
        kind = metric_kind(str(metric))
        direction = directions.get(str(metric), _DEFAULT_DIRECTION[kind])
        outs.append(
            _score_metric(
                part,
                replace(cfg, direction=direction),
                ratio_multiple=error_ratio_multiple if kind == "error_rate" else None,
                ratio_floor=error_ratio_floor,
                keep_all=not only_anomalies,
            )
        )
    scored = pl.concat(outs)
    if since is not None:
        scored = scored.filter(pl.col("bucket_start") >= pl.lit(since).cast(pl.Datetime("us", "UTC")))
    rows = []
    for r in scored.iter_rows(named=True):
        label = _label(r["metric"])
        ratio = r["ratio"] if r["isAnomaly"] and r["ratio"] is not None else None
        if r["by_ratio"]:
            reason = f"{label} is {r['ratio']:.1f}x the baseline ({r['value']:.4g} vs {r['expected']:.4g})"
            conf = max(r["score"], 0.5 + 0.5 * min(1.0, (r["ratio"] - error_ratio_multiple) / 10))
            method = "error_ratio"
        else:
            reason = reason_text(r["z"], label) if r["isAnomaly"] else "Within normal range"
            conf = r["score"]
            method = "robust_z"
        rows.append(
            {
                "component": r["component"],
                "metric": r["metric"],
                "timestamp": r["bucket_start"],
                "isAnomaly": r["isAnomaly"],
                "confidence": float(conf),
                "reason": reason,
                "expectedValue": r["expected"],
                "actualValue": r["value"],
                "severity": _severity(conf, ratio) if r["isAnomaly"] else "none",
                "anomaly_score": r["score"],
                "robust_z": r["z"],
                "method": method,
            }
        )
    return pl.DataFrame(rows, schema=schema)


def _score_metric(
    part: pl.DataFrame,
    cfg: AnomalyConfig,
    *,
    ratio_multiple: float | None,
    ratio_floor: float,
    keep_all: bool,
) -> pl.DataFrame:
    """Pack one metric's series (sorted by component, time) into a (time x series) batch, score, apply
    the ratio rule, and unpack the anomalies (or every row with ``keep_all``) to a long frame.
    The grid index is computed per series as in :func:`grid_index`."""
    part = part.with_columns(
        ci=(pl.col("component") != pl.col("component").shift()).fill_null(True).cum_sum().cast(pl.Int64) - 1
    )
    ci = part["ci"].to_numpy()
    t_sec = part["bucket_start"].dt.epoch("us").cast(pl.Float64).to_numpy() / 1e6
    n_ser = int(ci[-1]) + 1
    lengths = np.bincount(ci, minlength=n_ser)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pi = np.arange(ci.size) - starts[ci]
    # Median positive spacing per series, then each point's slot on that grid (non-decreasing).
    dt = np.diff(t_sec, prepend=np.nan)
    dt[starts] = np.nan
    steps = (
        pl.DataFrame({"ci": ci, "dt": dt}).filter(pl.col("dt") > 0).group_by("ci").agg(pl.col("dt").median())
    )
    step = np.ones(n_ser)
    step[steps["ci"].to_numpy()] = steps["dt"].to_numpy()
    g = np.rint((t_sec - t_sec[starts][ci]) / step[ci]).astype(np.int64)
    span = int(g.max()) + 1 if g.size else 1
    g = np.maximum.accumulate(g + ci * span) - ci * span
    t_len = int(lengths.max())
    values = np.full((t_len, n_ser), np.nan)
    grid = np.zeros((t_len, n_ser), dtype=np.int64)
    values[pi, ci] = part["value"].to_numpy()
    grid[pi, ci] = g
    res = score_batch(values, grid, lengths, cfg)
    gated = pi >= cfg.min_history
    z = res.z[pi, ci]
    expected = res.expected[pi, ci]
    flag = res.is_anomaly[pi, ci]
    vals = part["value"].to_numpy()
    if ratio_multiple is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = vals / np.maximum(np.nan_to_num(expected, nan=-np.inf), ratio_floor)
        ratio_hit = gated & ~np.isnan(expected) & (ratio > ratio_multiple)
    else:
        ratio = np.full(vals.size, np.nan)
        ratio_hit = np.zeros(vals.size, dtype=bool)
    is_anom = flag | ratio_hit
    keep = slice(None) if keep_all else np.flatnonzero(is_anom)
    return part.select("component", "metric", "bucket_start", "value")[keep].with_columns(
        z=pl.Series(z[keep]),
        expected=pl.Series(expected[keep]).fill_nan(None),
        score=pl.Series(res.score[pi, ci][keep]),
        ratio=pl.Series(ratio[keep]).fill_nan(None),
        isAnomaly=pl.Series(is_anom[keep]),
        by_ratio=pl.Series((ratio_hit & ~flag)[keep]),
    )
