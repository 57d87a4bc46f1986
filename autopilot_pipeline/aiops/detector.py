"""The anomaly detector: calibrated tail probabilities of how unusual each point is, given its past.

Two halves, each its own module:

1. :mod:`.detector_engine` forecasts every point from the points before it (a robust bank of smoothers,
   seasonal at full resolution when a daily or weekly season is found, re-levelled after a level shift)
   and returns the residuals;
2. :mod:`.detector_calib` turns four statistics (the residual, its 5-point mean, the 64-point mean of
   the slowest model's residual, the 16-point spread of the values) into tail probabilities under the empirical
   distribution of their own past values with a generalised Pareto tail beyond it, floors a value that
   recurs at its frequency, combines the one-sided p-values with Bonferroni, and groups alarms into
   episodes.

``anomaly_score`` = 1 - p, with p the combined p-value (full precision; 1 - p rounds to 1.0 below p ~ 1e-16).
``is_anomaly`` marks the first point of each alarm episode, an alarm being p < :data:`ALPHA` (one fixed
threshold for every series; no per-series parameter). After an alarm, alarms less than :data:`QUIET`
points apart belong to the same episode unless the series was calm for a while in between: in that
refractory period a point's score is held just below
the threshold, so ``anomaly_score >= THRESHOLD`` is exactly ``is_anomaly`` (its p-value still shows in
``robust_z``). ``robust_z`` is the normal quantile with the same two-sided tail probability, signed by the
side that alarmed: a readable "how many sigmas".

Causal: a point's score uses only points at or before it (the memory is refreshed block by block from
points strictly before the block). Vectorised across series: :func:`score_batch` scores a (time x series)
array in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import polars as pl
from scipy import special

from autopilot_pipeline.aiops.detector_calib import ALPHA, CALM_P, QUIET, STATS, calibrate, onsets, statistics
from autopilot_pipeline.aiops.detector_engine import forecast_residuals
from autopilot_pipeline.aiops.metric_kinds import (
    DEFAULT_DIRECTION,
    Direction,
    metric_kind,
    metric_label,
    severity,
)
from autopilot_pipeline.aiops.series_time import grid_index, to_epoch_seconds

__all__ = [
    "ALPHA",
    "QUIET",
    "THRESHOLD",
    "BatchScores",
    "DetectorConfig",
    "confidence",
    "detect_anomalies",
    "episode_starts",
    "metric_kind",
    "score_batch",
    "score_series",
]

THRESHOLD = 1.0 - ALPHA
"""The shipped decision threshold on ``anomaly_score`` (p < 1e-4)."""


@dataclass(frozen=True)
class DetectorConfig:
    """What may differ between uses; the statistics and the threshold are fixed (see the modules)."""

    min_history: int = 30
    """Points that only start the state; their scores are 0."""
    direction: Direction = "both"
    """Which deviations count: both, only above (latency, errors) or only below (uptime). A flatline
    (variation gone) counts in every direction; more variation only with "both"."""
    period: int | None = None
    """Season length in samples; None finds it from the past, 0 disables seasonality."""
    alpha: float = ALPHA
    """Alarm level of the combined p-value. Leave it: it is the detector's one fixed threshold."""


@dataclass
class BatchScores:
    """Per-point results of :func:`score_batch`, arrays of shape (time, series)."""

    p: np.ndarray
    score: np.ndarray
    z: np.ndarray
    expected: np.ndarray
    alarm: np.ndarray  # p < alpha
    is_anomaly: np.ndarray  # first alarm of each episode
    stat: np.ndarray  # which statistic was most significant (index into detector_calib.STATS)
    period: np.ndarray  # season length per series at the end (0: none)


_SIDES: dict[str, list[tuple[int, int]]] = {
    "both": [(i, s) for i in range(4) for s in (1, -1)],
    # One-sided metrics: their level tests on the harmful side, plus "stopped varying" (a stuck metric).
    # More spread shows there as harmful excursions already; the harmless side of it is not an alarm.
    "up": [(0, 1), (1, 1), (2, 1), (3, -1)],
    "down": [(0, -1), (1, -1), (2, -1), (3, -1)],
}


def score_batch(
    values: np.ndarray,
    grid: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    config: DetectorConfig | None = None,
) -> BatchScores:
    """Score many series at once.

    ``values`` is (time x series) with each series' valid points packed at the top and NaN padding below
    (``lengths`` gives each series' count). ``grid`` (same shape, int) is each point's slot on the series'
    regular sampling grid, used for the seasonal phase so gaps do not shift the season; default = row.
    """
    cfg = config or DetectorConfig()
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    x = np.where(np.isfinite(x), x, np.nan)  # an infinite value is a broken sample, not a measurement
    t_len, n_ser = x.shape
    if t_len == 0 or n_ser == 0 or np.isnan(x).all():
        shape = (t_len, n_ser)
        none = np.zeros(shape, dtype=bool)
        return BatchScores(
            p=np.ones(shape),
            score=np.zeros(shape),
            z=np.zeros(shape),
            expected=np.full(shape, np.nan),
            alarm=none,
            is_anomaly=none.copy(),
            stat=np.zeros(shape, dtype=np.int64),
            period=np.zeros(n_ser, dtype=np.int64),
        )
    if lengths is None:
        lengths = (~np.isnan(x)).sum(axis=0)
    if grid is None:
        grid = np.broadcast_to(np.arange(t_len, dtype=np.int64)[:, None], (t_len, n_ser))
    n0 = max(int(cfg.min_history), 3)
    res = forecast_residuals(x, np.asarray(grid), np.asarray(lengths), n0, cfg.period)
    stats, unit = statistics(res.resid, res.slow_resid, res.floor, res.scale, x)
    cal = calibrate(
        stats,
        res.floor,
        n0,
        _SIDES[cfg.direction],
        res.regime,
        values=x,
        seasonal=res.seasonal,
        alpha=cfg.alpha,
        unit=unit,
        jump=_error_jumps(res.resid),
    )
    p = np.where(np.isnan(x), 1.0, cal.p)
    p[:n0] = 1.0
    z = -special.ndtri(np.clip(p, 1e-300, 1.0) / 2) * cal.side
    alarm = (p < cfg.alpha) & cal.alarm
    onset = cal.onset & alarm
    # Refractory period: inside an episode a point cannot raise a new alarm, so its score stays just below
    # the threshold (its p-value and robust_z still say how unusual it is).
    score = np.where(alarm & ~onset, np.minimum(1.0 - p, np.nextafter(1.0 - cfg.alpha, 0.0)), 1.0 - p)
    return BatchScores(
        p=p,
        score=score,
        z=np.where(p < 1.0, z, 0.0),
        expected=res.expected,
        alarm=alarm,
        is_anomaly=onset,
        stat=cal.stat,
        period=res.period,
    )


def _error_jumps(resid: np.ndarray) -> np.ndarray:
    """r_t - r_{t-1} of the forecast error (NaN at the first point and where either is missing)."""
    out = np.full(resid.shape, np.nan)
    out[1:] = resid[1:] - resid[:-1]
    return out


def confidence(p: np.ndarray | float, alpha: float = ALPHA) -> np.ndarray:
    """A readable confidence in [0, 1]: 0.5 at the threshold, 0.72 ten times beyond, 0.95 at 1e4 times.

    ``anomaly_score`` = 1 - p is the probability; alarms all have it above 0.9999, which tells a reader
    nothing about how far beyond the threshold a point is. This maps the ratio p / alpha instead."""
    r = np.asarray(p, dtype=np.float64) / alpha
    return np.where(r <= 1, 1 - 0.5 * r**0.25, 0.5 * np.minimum(1 / np.maximum(r, 1e-300), 1) ** 0.25)


_WHAT = {
    ("point", 1): "is far above its expected value",
    ("point", -1): "is far below its expected value",
    ("short", 1): "has stayed above its expected value for several points",
    ("short", -1): "has stayed below its expected value for several points",
    ("drift", 1): "has drifted above its usual level",
    ("drift", -1): "has drifted below its usual level",
    ("spread", 1): "has become far more variable than usual",
    ("spread", -1): "has stopped varying (flat where it always moved)",
}


def reason_text(stat: int, side: float, p: float, value: float, expected: float, label: str = "Value") -> str:
    """One line saying what was unusual, the values and the tail probability."""
    what = _WHAT[(STATS[int(stat)].name, 1 if side >= 0 else -1)]
    return f"{label} {what} ({value:.4g} vs {expected:.4g} expected; p = {p:.2g})"


def score_series(
    timestamps: Sequence | np.ndarray | pl.Series,
    values: Sequence | np.ndarray | pl.Series,
    config: DetectorConfig | None = None,
) -> pl.DataFrame:
    """Score one series; one output row per input row, in input order.

    Missing values (None/NaN, and infinities) get score 0 and are skipped. Unsorted timestamps are scored in time order
    (ties keep input order); irregular spacing is placed on the series' median-spacing grid. Columns:
    timestamp, value, anomaly_score, is_anomaly, expected_value, robust_z, reason (null unless is_anomaly).
    """
    cfg = config or DetectorConfig()
    v = np.asarray(pl.Series("v", values, dtype=pl.Float64, strict=False).fill_null(np.nan).to_numpy())
    v = np.where(np.isfinite(v), v, np.nan)
    ts = timestamps if isinstance(timestamps, pl.Series) else pl.Series("timestamp", list(timestamps))
    if ts.len() == 0 and v.size == 0:
        ts = ts.cast(pl.Float64)
    t_sec = to_epoch_seconds(ts)
    if t_sec.size != v.size:
        raise ValueError(f"{t_sec.size} timestamps but {v.size} values")
    order = np.argsort(t_sec, kind="stable")
    v_sorted = v[order]
    keep = ~np.isnan(v_sorted)
    idx = order[keep]
    g = grid_index(t_sec[order])[keep]
    res = score_batch(v_sorted[keep][:, None], g[:, None], np.array([keep.sum()]), cfg)
    n = v.size
    score, z, expected = np.zeros(n), np.zeros(n), np.full(n, np.nan)
    flag, p, stat = np.zeros(n, dtype=bool), np.ones(n), np.zeros(n, dtype=np.int64)
    score[idx], z[idx], expected[idx] = res.score[:, 0], res.z[:, 0], res.expected[:, 0]
    flag[idx], p[idx], stat[idx] = res.is_anomaly[:, 0], res.p[:, 0], res.stat[:, 0]
    reasons = [reason_text(stat[i], z[i], p[i], v[i], expected[i]) if flag[i] else None for i in range(n)]
    return pl.DataFrame(
        {
            "timestamp": ts.rename("timestamp"),
            "value": pl.Series(v),
            "anomaly_score": score,
            "is_anomaly": flag,
            "expected_value": pl.Series(expected).fill_nan(None),
            "robust_z": z,
            "reason": pl.Series(reasons, dtype=pl.String),
        }
    )


# ------------------------------------------------------------------------------------ many series, seed shape

_SCHEMA = {
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
    "alarm": pl.Boolean,
}


def episode_starts(series_id: np.ndarray, alarm: np.ndarray, score: np.ndarray) -> np.ndarray:
    """First alarms of episodes for long rows sorted by series then time (``series_id`` one integer per
    series): the rule of :func:`.detector_calib.onsets`, calm meaning ``score`` below 1 - CALM_P."""
    out = np.zeros(alarm.size, dtype=bool)
    if alarm.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, series_id[1:] != series_id[:-1]])
    ends = np.r_[starts[1:], alarm.size]
    for a, b in zip(starts, ends, strict=True):
        flags, _ = onsets(alarm[a:b, None], (score[a:b] < 1 - CALM_P)[:, None])
        out[a:b] = flags[:, 0]
    return out


def detect_anomalies(
    frame: pl.DataFrame,
    config: DetectorConfig | None = None,
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
    severity, anomaly_score, robust_z, method, alarm. ``alarm`` marks every alarming point (p below the
    threshold, or the ratio rule), ``isAnomaly`` the first of each episode of them; ``confidence`` is
    :func:`confidence` of the p-value (0.5 at the threshold).
    """
    cfg = config or DetectorConfig()
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
        return pl.DataFrame(schema=_SCHEMA)
    directions = directions or {}
    outs = []
    for (metric,), part in df.group_by(["metric"], maintain_order=True):
        kind = metric_kind(str(metric))
        direction = directions.get(str(metric), DEFAULT_DIRECTION[kind])
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
        label = metric_label(r["metric"])
        ratio = r["ratio"] if r["alarm"] and r["ratio"] is not None else None
        conf = float(confidence(r["p"], cfg.alpha))
        expected = r["expected"] if r["expected"] is not None else float("nan")
        if r["by_ratio"]:
            reason = f"{label} is {r['ratio']:.1f}x the baseline ({r['value']:.4g} vs {expected:.4g})"
            conf = max(conf, 0.5 + 0.5 * min(1.0, (r["ratio"] - error_ratio_multiple) / 10))
            method = "error_ratio"
        else:
            reason = (
                reason_text(r["stat"], r["z"], r["p"], r["value"], expected, label)
                if r["alarm"]
                else "Within normal range"
            )
            method = "tail_probability"
        rows.append(
            {
                "component": r["component"],
                "metric": r["metric"],
                "timestamp": r["bucket_start"],
                "isAnomaly": r["isAnomaly"],
                "confidence": conf,
                "reason": reason,
                "expectedValue": r["expected"],
                "actualValue": r["value"],
                "severity": severity(conf, ratio) if r["alarm"] else "none",
                "anomaly_score": r["score"],
                "robust_z": r["z"],
                "method": method,
                "alarm": r["alarm"],
            }
        )
    return pl.DataFrame(rows, schema=_SCHEMA)


def pack_long(part: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A long frame (component, bucket_start, value; sorted by component then time) as a (time x series)
    batch: values, grid slots, lengths, and each row's (series, position) to unpack the results."""
    ci = (
        (part["component"] != part["component"].shift()).fill_null(True).cum_sum().cast(pl.Int64) - 1
    ).to_numpy()
    t_sec = part["bucket_start"].dt.epoch("us").cast(pl.Float64).to_numpy() / 1e6
    n_ser = int(ci[-1]) + 1
    lengths = np.bincount(ci, minlength=n_ser)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pi = np.arange(ci.size) - starts[ci]
    # Median positive spacing per series, then each point's slot on that grid (non-decreasing).
    dt = np.diff(t_sec, prepend=np.nan)
    dt[starts] = np.nan
    steps = (
        pl.DataFrame({"ci": ci, "dt": dt}).filter(
            pl.col("dt").is_not_nan() & (pl.col("dt") > 0)
        )  # polars orders NaN above every number.group_by("ci").agg(pl.col("dt").median())
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
    return values, grid, lengths, ci, pi


def _score_metric(
    part: pl.DataFrame,
    cfg: DetectorConfig,
    *,
    ratio_multiple: float | None,
    ratio_floor: float,
    keep_all: bool,
) -> pl.DataFrame:
    """Score one metric's series as a batch, apply the ratio rule, unpack anomalies (or every row)."""
    values, grid, lengths, ci, pi = pack_long(part)
    res = score_batch(values, grid, lengths, cfg)
    expected = res.expected[pi, ci]
    vals = part["value"].to_numpy()
    if ratio_multiple is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = vals / np.maximum(np.nan_to_num(expected, nan=-np.inf), ratio_floor)
        ratio_hit = (pi >= cfg.min_history) & ~np.isnan(expected) & (ratio > ratio_multiple)
    else:
        ratio = np.full(vals.size, np.nan)
        ratio_hit = np.zeros(vals.size, dtype=bool)
    alarm_m = res.alarm.copy()
    alarm_m[pi, ci] |= ratio_hit
    calm_m = res.p > CALM_P
    calm_m[pi, ci] &= ~ratio_hit
    start, _ = onsets(alarm_m, calm_m)
    flag = res.alarm[pi, ci]
    is_anom = start[pi, ci]
    keep = slice(None) if keep_all else np.flatnonzero(is_anom)
    return part.select("component", "metric", "bucket_start", "value")[keep].with_columns(
        z=pl.Series(res.z[pi, ci][keep]),
        expected=pl.Series(expected[keep]).fill_nan(None),
        score=pl.Series(res.score[pi, ci][keep]),
        p=pl.Series(res.p[pi, ci][keep]),
        stat=pl.Series(res.stat[pi, ci][keep]),
        ratio=pl.Series(ratio[keep]).fill_nan(None),
        isAnomaly=pl.Series(is_anom[keep]),
        alarm=pl.Series((flag | ratio_hit)[keep]),
        by_ratio=pl.Series((ratio_hit & ~flag)[keep]),
    )
