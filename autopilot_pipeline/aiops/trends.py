"""Trend analysis: is a metric improving, stable or degrading over a window?

A trend is reported only when three views agree, so one spike or a slow wobble does not make a trend:

1. statsmodels OLS of value on time; operational series are autocorrelated and plain OLS p-values would be
   far too small, so the slope's standard error is the larger of Newey-West (HAC) and the AR(1)
   effective-sample-size one (t test on n_eff - 2 dof); its slope is the reported ``slope``;
2. the Mann-Kendall rank test with its variance corrected for autocorrelation (Hamed-Rao 1998, or the
   AR(1) factor when larger);
3. the sign of the Theil-Sen slope (median of pairwise slopes, robust to up to ~29 % outliers).

Both p-values must be below ``alpha`` and the two slopes must have the same sign. Whether "up" is good
depends on the metric: pass ``higher_is_better`` (uptime: True; latency, errors: False).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import special, stats

from autopilot_pipeline.aiops.metric_kinds import metric_kind

__all__ = [
    "TrendResult",
    "analyze_trend",
    "analyze_trends",
    "mann_kendall",
    "theil_sen",
]

_MAX_RANK_POINTS = 1000
_Z975 = 1.959963984540054


@dataclass(frozen=True)
class TrendResult:
    """One series' trend verdict and the statistics behind it (slopes are per hour unless named)."""

    trend: str
    slope: float
    slope_per_day: float
    slope_ci_low: float
    slope_ci_high: float
    p_value: float
    r_squared: float
    confidence: float
    data_points: int
    mann_kendall_p: float
    mann_kendall_tau: float
    theil_sen_slope: float
    window_start: datetime | None
    window_end: datetime | None

    def to_dict(self) -> dict:
        """The seed's JSON shape (``trend``, ``slope``, ``confidence``, ``dataPoints``) plus the extras."""
        d = asdict(self)
        return {
            "trend": d.pop("trend"),
            "slope": d.pop("slope"),
            "confidence": d.pop("confidence"),
            "dataPoints": d.pop("data_points"),
            "slopePerDay": d.pop("slope_per_day"),
            "slopeCI95": [d.pop("slope_ci_low"), d.pop("slope_ci_high")],
            "pValue": d.pop("p_value"),
            "rSquared": d.pop("r_squared"),
            "mannKendallP": d.pop("mann_kendall_p"),
            "mannKendallTau": d.pop("mann_kendall_tau"),
            "theilSenSlope": d.pop("theil_sen_slope"),
            "windowStart": d["window_start"].isoformat() if d["window_start"] else None,
            "windowEnd": d["window_end"].isoformat() if d["window_end"] else None,
        }


@functools.lru_cache(maxsize=8)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def theil_sen(t: np.ndarray, y: np.ndarray) -> float:
    """Median of the pairwise slopes (y_j - y_i) / (t_j - t_i) over pairs with t_j > t_i."""
    i, j = _pairs(t.size)
    dt = t[j] - t[i]
    ok = dt > 0
    if not ok.any():
        return 0.0
    return float(np.median((y[j][ok] - y[i][ok]) / dt[ok]))


def ar1_inflation(resid: np.ndarray) -> float:
    """Variance inflation (1 + rho) / (1 - rho) from the lag-1 autocorrelation of residuals, with the
    small-sample bias correction rho + (1 + 4 rho) / n (short series underestimate rho badly)."""
    n = resid.size
    rc = resid - resid.mean()
    denom = float(rc @ rc)
    if n < 4 or denom <= 0:
        return 1.0
    rho = float(rc[:-1] @ rc[1:]) / denom
    rho = min(max(rho + (1 + 4 * rho) / n, 0.0), 0.98)
    return (1 + rho) / (1 - rho)


def mann_kendall(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Kendall test with ties, corrected for autocorrelation.

    Returns (p_value, Kendall's tau). The variance is multiplied by the larger of the Hamed-Rao factor
    (lags where the autocorrelation of the ranks of the Theil-Sen-detrended series is significant at 5 %)
    and the bias-corrected AR(1) factor; it is never shrunk (factor >= 1).
    """
    n = y.size
    if n < 4:
        return 1.0, 0.0
    i, j = _pairs(n)
    s = float(np.sign(y[j] - y[i]).sum())
    _, counts = np.unique(y, return_counts=True)
    ties = counts[counts > 1].astype(np.float64)
    var_s = (n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())) / 18.0
    if var_s <= 0:
        return 1.0, 0.0
    detr = y - theil_sen(t, y) * t
    ranks = stats.rankdata(detr)
    rc = ranks - ranks.mean()
    denom = float(rc @ rc)
    if denom > 0:
        k = np.arange(1, n - 2)
        acf = np.correlate(rc, rc, mode="full")[n : 2 * n - 3] / denom
        sig = np.abs(acf) > _Z975 / math.sqrt(n)
        corr = 1 + 2.0 / (n * (n - 1) * (n - 2)) * float(
            ((n - k) * (n - k - 1) * (n - k - 2) * acf * sig).sum()
        )
        var_s *= max(corr, ar1_inflation(detr), 1.0)
    z = (s - math.copysign(1.0, s)) / math.sqrt(var_s) if s != 0 else 0.0
    p = float(2 * special.ndtr(-abs(z)))
    tau = s / (n * (n - 1) / 2)
    return p, float(tau)


def _block_means(t: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-count block means, so the O(n^2) rank statistics stay cheap on long minute-level series."""
    if y.size <= max_points:
        return t, y
    edges = np.linspace(0, y.size, max_points + 1).astype(np.int64)
    t_b = np.add.reduceat(t, edges[:-1]) / np.diff(edges)
    y_b = np.add.reduceat(y, edges[:-1]) / np.diff(edges)
    return t_b, y_b


def _trend_core(
    hours: np.ndarray,
    y: np.ndarray,
    *,
    higher_is_better: bool,
    alpha: float,
    min_points: int,
    min_change: float,
) -> tuple:
    """Trend statistics of clean arrays (hours since any origin, values); returns TrendResult fields."""
    n = y.size
    if n < min_points or np.ptp(hours) <= 0:
        return ("stable", 0.0, 0.0, float("nan"), float("nan"), 1.0, 0.0, 0.0, int(n), 1.0, 0.0, 0.0)
    if np.ptp(y) == 0:
        return ("stable", 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, int(n), 1.0, 0.0, 0.0)
    h0 = hours - hours.min()
    x = sm.add_constant(h0, has_constant="add")
    maxlags = int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0)))
    fit = sm.OLS(y, x).fit(cov_type="HAC", cov_kwds={"maxlags": max(maxlags, 1)})
    slope = float(fit.params[1])
    # Newey-West with few lags still underestimates the variance under strong AR(1) noise: also take the
    # effective-sample-size standard error (Santer et al. 2000) and keep the larger, with its t dof.
    sxx = float(((h0 - h0.mean()) ** 2).sum())
    se_plain = math.sqrt(float(fit.ssr) / (n - 2) / sxx) if n > 2 else float("inf")
    n_eff = n / ar1_inflation(np.asarray(fit.resid))
    se_eff = se_plain * math.sqrt((n - 2) / max(n_eff - 2, 1e-9)) if n_eff > 3 else float("inf")
    se = max(float(fit.bse[1]), se_eff)
    dof = max(n_eff - 2, 1.0)
    if se > 0 and math.isfinite(se):
        p_ols = float(2 * special.stdtr(dof, -abs(slope) / se))
        half = float(special.stdtrit(dof, 0.975)) * se
    else:
        p_ols, half = 1.0, float("inf")
    t_r, y_r = _block_means(h0, y, _MAX_RANK_POINTS)
    p_mk, tau = mann_kendall(t_r, y_r)
    ts_slope = theil_sen(t_r, y_r)
    significant = (
        p_ols < alpha
        and p_mk < alpha
        and np.sign(ts_slope) == np.sign(slope) != 0
        and abs(slope * float(np.ptp(h0))) >= min_change
    )
    direction = "improving" if (slope > 0) == higher_is_better else "degrading"
    trend = direction if significant else "stable"
    return (
        trend,
        slope,
        slope * 24.0,
        slope - half,
        slope + half,
        p_ols,
        float(fit.rsquared),
        float(1.0 - max(p_ols, p_mk)),
        int(n),
        p_mk,
        tau,
        ts_slope,
    )


def analyze_trend(
    timestamps: Sequence[datetime] | pl.Series,
    values: Sequence[float] | np.ndarray | pl.Series,
    *,
    higher_is_better: bool,
    alpha: float = 0.05,
    min_points: int = 8,
    min_change: float = 0.0,
) -> TrendResult:
    """Trend of one series. ``min_change`` (in value units over the whole window) makes a statistically
    significant but negligible slope count as stable; 0 disables that test."""
    ts = timestamps if isinstance(timestamps, pl.Series) else pl.Series("t", list(timestamps))
    ts = ts.cast(pl.Datetime("us", "UTC"))
    y_all = pl.Series("v", values, dtype=pl.Float64, strict=False).fill_nan(None).to_numpy()
    t_us = ts.dt.epoch("us").cast(pl.Float64).to_numpy()
    ok = ~np.isnan(y_all) & ~np.isnan(t_us)
    kept = ts.filter(pl.Series(ok))
    fields = _trend_core(
        t_us[ok] / 3.6e9,
        y_all[ok],
        higher_is_better=higher_is_better,
        alpha=alpha,
        min_points=min_points,
        min_change=min_change,
    )
    return TrendResult(*fields, kept.min() if kept.len() else None, kept.max() if kept.len() else None)


def _higher_is_better(metric: str | None, setting: bool | Mapping[str, bool] | None) -> bool:
    if isinstance(setting, bool):
        return setting
    if isinstance(setting, Mapping) and metric in setting:
        return bool(setting[metric])
    return metric_kind(metric or "") == "uptime"


def analyze_trends(
    frame: pl.DataFrame,
    *,
    window: timedelta | None = None,
    higher_is_better: bool | Mapping[str, bool] | None = None,
    alpha: float = 0.05,
    min_points: int = 8,
    min_change: float | Mapping[str, float] = 0.0,
    time_col: str = "bucket_start",
    value_col: str = "value",
) -> pl.DataFrame:
    """Trend per series of a long frame (grouped by whichever of component and metric are present).

    ``window`` keeps the trailing window ending at each series' last bucket. ``higher_is_better`` is one
    bool, a per-metric mapping, or None (uptime-like metrics: True; everything else: False).
    One row per series: the group columns, then trend, slope (per hour), confidence, dataPoints and the
    extras of :class:`TrendResult`.
    """
    groups = [c for c in ("component", "metric") if c in frame.columns]
    df = frame.select(
        *groups, pl.col(time_col).cast(pl.Datetime("us", "UTC")), pl.col(value_col).cast(pl.Float64)
    )
    if window is not None:
        last = pl.col(time_col).max().over(groups) if groups else pl.col(time_col).max()
        df = df.filter(pl.col(time_col) > last - window)
    df = df.filter(
        pl.col(value_col).is_not_null() & pl.col(value_col).is_not_nan() & pl.col(time_col).is_not_null()
    )
    df = df.sort([*groups, time_col])
    hours = (df[time_col].dt.epoch("us").cast(pl.Float64) / 3.6e9).to_numpy()
    vals = df[value_col].to_numpy()
    times = df[time_col]
    if groups:
        keys = (
            df.select(groups)
            .with_row_index("_i")
            .group_by(groups, maintain_order=True)
            .agg(pl.col("_i").first().alias("_start"), pl.len().alias("_n"))
        )
        spans = [(r, r["_start"], r["_n"]) for r in keys.iter_rows(named=True)]
    else:
        spans = [({}, 0, df.height)]
    rows = []
    for labels_row, start, count in spans:
        labels = {g: labels_row[g] for g in groups}
        metric = labels.get("metric")
        change = min_change.get(metric, 0.0) if isinstance(min_change, Mapping) else min_change
        sl = slice(start, start + count)
        fields = _trend_core(
            hours[sl],
            vals[sl],
            higher_is_better=_higher_is_better(metric, higher_is_better),
            alpha=alpha,
            min_points=min_points,
            min_change=float(change),
        )
        res = TrendResult(
            *fields, times[start] if count else None, times[start + count - 1] if count else None
        )
        d = res.to_dict()
        d["slopeCI95Low"], d["slopeCI95High"] = d.pop("slopeCI95")
        d["windowStart"], d["windowEnd"] = res.window_start, res.window_end
        rows.append({**labels, **d})
    schema = {g: pl.String for g in groups} | {
        "trend": pl.String,
        "slope": pl.Float64,
        "confidence": pl.Float64,
        "dataPoints": pl.Int64,
        "slopePerDay": pl.Float64,
        "pValue": pl.Float64,
        "rSquared": pl.Float64,
        "mannKendallP": pl.Float64,
        "mannKendallTau": pl.Float64,
        "theilSenSlope": pl.Float64,
        "windowStart": pl.Datetime("us", "UTC"),
        "windowEnd": pl.Datetime("us", "UTC"),
        "slopeCI95Low": pl.Float64,
        "slopeCI95High": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)
