"""Forecasts with prediction intervals, and the probability of crossing a failure threshold.

Model (chosen by the backtest in ``bench/bench_aiops.py forecast``, numbers in docs/AI_OPS_GUIDE.md):
statsmodels ``ETSModel`` with additive errors, additive damped trend and additive daily seasonality,
ETS(A,Ad,A), fitted on hourly means. With less than two days of history the season is dropped
(ETS(A,Ad,N)); with less than ``MIN_ETS`` hours a naive random walk is used.

Intervals and crossing probability come from one place, the model's innovations form:
``y[T+h] = mean[h] + e[h] + sum_j c_j e[h-j]`` with ``c_j = alpha + beta (phi + ... + phi^j) + gamma 1{j % m == 0}``
and Gaussian e with the fitted variance (this is what ``ETSResults.simulate(anchor="end")`` draws, and the
variance matches statsmodels' exact prediction intervals, which a test checks). So the 80 %/95 % bands are
closed-form, and ``failure_probability`` = the share of simulated 24-hour paths that cross the threshold at
any step: a path probability, not a union bound or a single-step marginal.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl
from scipy import stats

from autopilot_pipeline.aiops.metric_kinds import metric_kind

Direction = Literal["above", "below"]

MIN_ETS = 10
_SEASON = 24
_Z90 = 1.2815515655446004  # two-sided 80 % interval
_Z975 = 1.959963984540054  # two-sided 95 % interval

DEFAULT_THRESHOLDS: dict[str, tuple[Direction, float]] = {
    "uptime_pct": ("below", 90.0),  # the seed's "Critical Uptime (< 90%)"
    "p95_ms": ("above", 10_000.0),  # "Critical Response Time (> 10s)"
    "p99_ms": ("above", 10_000.0),
    "avg_ms": ("above", 10_000.0),
    "p50_ms": ("above", 10_000.0),
    "errors_per_hour": ("above", 10.0),  # "High Error Rate (> 10/hour)"
    "error_ratio": ("above", 0.10),
}
"""Failure thresholds by metric name (from the seed's default alert rules); resource metrics ending in
``_pct`` default to "above 95" (near exhaustion)."""


def threshold_for(
    metric: str, thresholds: Mapping[str, tuple[Direction, float]] | None = None
) -> tuple[Direction, float] | None:
    """The (direction, value) failure threshold of a metric, or None when there is no sensible default."""
    table = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    if metric in table:
        return table[metric]
    kind = metric_kind(metric)
    if kind == "uptime":
        return DEFAULT_THRESHOLDS["uptime_pct"]
    if kind == "latency":
        return DEFAULT_THRESHOLDS["p95_ms"]
    if kind == "error_rate":
        return DEFAULT_THRESHOLDS["error_ratio"]
    if kind == "error_count":
        return DEFAULT_THRESHOLDS["errors_per_hour"]
    if metric.endswith("_pct") or metric.endswith("_percent"):
        return ("above", 95.0)
    return None


def bounds_for(metric: str) -> tuple[float, float]:
    kind = metric_kind(metric)
    if kind == "uptime" or metric.endswith("_pct"):
        return (0.0, 100.0)
    if kind in ("error_rate", "degraded"):
        return (0.0, 1.0)
    if kind in ("latency", "error_count"):
        return (0.0, math.inf)
    return (-math.inf, math.inf)


@dataclass
class ForecastResult:
    """A fitted forecast: the hourly band frame and what is needed to simulate paths."""

    method: str
    frame: pl.DataFrame  # bucket_start, forecast, lower_80, upper_80, lower_95, upper_95
    mean: np.ndarray
    sigma: float
    impulse: np.ndarray  # c_1 .. c_{H-1}
    history_points: int
    last_value: float
    bounds: tuple[float, float] = (-math.inf, math.inf)
    params: dict[str, float] = field(default_factory=dict)

    def paths(self, n_paths: int = 1000, seed: int = 0) -> np.ndarray:
        """Simulated future paths, shape (n_paths, horizon), clipped to the metric's bounds."""
        h = self.mean.size
        rng = np.random.default_rng(seed)
        e = rng.standard_normal((n_paths, h)) * self.sigma
        c = np.zeros((h, h))
        for k in range(h):
            c[k, k] = 1.0
            if k:
                c[k, :k] = self.impulse[:k][::-1]
        out = self.mean[None, :] + e @ c.T
        return np.clip(out, self.bounds[0], self.bounds[1])

    def std(self) -> np.ndarray:
        """Forecast standard deviation per step (closed form)."""
        cum = np.concatenate([[0.0], np.cumsum(self.impulse**2)])[: self.mean.size]
        return self.sigma * np.sqrt(1.0 + cum)


def hourly(frame: pl.DataFrame, time_col: str = "bucket_start", value_col: str = "value") -> pl.DataFrame:
    """Hourly means on a complete hourly grid (gaps linearly interpolated, ends held)."""
    df = (
        frame.select(
            pl.col(time_col).cast(pl.Datetime("us", "UTC")).alias("bucket_start"),
            pl.col(value_col).cast(pl.Float64).alias("value"),
        )
        .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
        .with_columns(pl.col("bucket_start").dt.truncate("1h"))
        .group_by("bucket_start")
        .agg(pl.col("value").mean())
        .sort("bucket_start")
    )
    if df.height < 2:
        return df
    grid = pl.DataFrame(
        {"bucket_start": pl.datetime_range(df["bucket_start"][0], df["bucket_start"][-1], "1h", eager=True)}
    )
    return (
        grid.join(df, on="bucket_start", how="left")
        .with_columns(pl.col("value").interpolate())
        .with_columns(pl.col("value").forward_fill().backward_fill())
    )


def _impulse(alpha: float, beta: float, gamma: float, phi: float, m: int, h: int) -> np.ndarray:
    j = np.arange(1, h)
    damp = np.cumsum(phi**j) if beta else np.zeros(j.size)
    season = (j % m == 0).astype(float) if (gamma and m) else np.zeros(j.size)
    return alpha + beta * damp + gamma * season


def fit_ets(
    y: np.ndarray, horizon: int, season: int | None
) -> tuple[str, np.ndarray, float, np.ndarray, dict]:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = season is not None and y.size >= 2 * season + MIN_ETS
    kw: dict = {"error": "add", "trend": "add", "damped_trend": True}
    if seasonal:
        kw.update(seasonal="add", seasonal_periods=season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ETSModel(y, initialization_method="heuristic" if seasonal else "estimated", **kw)
        res = model.fit(disp=False, maxiter=200)
    alpha = float(res.smoothing_level)
    beta = float(res.smoothing_trend)
    phi = float(res.damping_trend)
    gamma = float(res.smoothing_seasonal) if seasonal else 0.0
    mean = np.asarray(res.forecast(horizon), dtype=np.float64)
    sigma = math.sqrt(float(res.mse))
    name = "ETS(A,Ad,A)" if seasonal else "ETS(A,Ad,N)"
    params = {"alpha": alpha, "beta": beta, "gamma": gamma, "phi": phi}
    return name, mean, sigma, _impulse(alpha, beta, gamma, phi, season or 0, horizon), params


def forecast(
    series: pl.DataFrame,
    horizon_hours: int = 24,
    *,
    season_length: int | None = _SEASON,
    bounds: tuple[float, float] = (-math.inf, math.inf),
    time_col: str = "bucket_start",
    value_col: str = "value",
) -> ForecastResult:
    """Forecast a series ``horizon_hours`` ahead on hourly means, with 80 % and 95 % prediction intervals.

    ``series`` has a timestamp column and a value column (any sampling; it is averaged per hour).
    Raises ValueError with fewer than 3 hourly points.
    """
    hist = hourly(series, time_col, value_col)
    y = hist["value"].to_numpy().astype(np.float64)
    if y.size < 3:
        raise ValueError(f"need at least 3 hourly points to forecast, got {y.size}")
    h = int(horizon_hours)
    last_t = hist["bucket_start"][-1]
    if y.size >= MIN_ETS and np.ptp(y) > 0:
        method, mean, sigma, impulse, params = fit_ets(y, h, season_length)
    else:
        method = "naive"
        d = np.diff(y)
        sigma = float(np.std(d)) if d.size and np.std(d) > 0 else max(abs(float(y[-1])) * 1e-3, 1e-9)
        mean = np.full(h, y[-1])
        impulse = np.ones(max(h - 1, 0))
        params = {}
    fc = ForecastResult(
        method, pl.DataFrame(), mean, sigma, impulse, int(y.size), float(y[-1]), bounds, params
    )
    sd = fc.std()
    z80, z95 = _Z90, _Z975
    lo, hi = bounds

    def clip(a: np.ndarray) -> np.ndarray:
        return np.clip(a, lo, hi)

    fc.frame = pl.DataFrame(
        {
            "bucket_start": pl.datetime_range(
                last_t + timedelta(hours=1), last_t + timedelta(hours=h), "1h", eager=True
            ),
            "forecast": clip(mean),
            "lower_80": clip(mean - z80 * sd),
            "upper_80": clip(mean + z80 * sd),
            "lower_95": clip(mean - z95 * sd),
            "upper_95": clip(mean + z95 * sd),
        }
    )
    return fc


def failure_probability(
    fc: ForecastResult, threshold: float, direction: Direction, *, n_paths: int = 1000, seed: int = 0
) -> float:
    """Probability that the metric crosses ``threshold`` at some step of the horizon.

    Estimated as the share of ``n_paths`` simulated paths from the fitted model that go above (or below)
    the threshold at least once; the Monte Carlo standard error is at most 0.5 / sqrt(n_paths).
    """
    paths = fc.paths(n_paths, seed)
    crossed = (paths > threshold) if direction == "above" else (paths < threshold)
    return float(crossed.any(axis=1).mean())


# ---------------------------------------------------------------------------------------------- backtest


@dataclass
class BacktestReport:
    """Causal replay of the forecaster: what it would have said at each origin, scored afterwards."""

    origins: int
    coverage_80: float
    coverage_95: float
    brier: float
    brier_climatology: float
    brier_skill: float
    event_rate: float
    lead_times_hours: list[float | None]
    mae: float
    per_origin: pl.DataFrame

    def to_dict(self) -> dict:
        return {
            "origins": self.origins,
            "coverage80": self.coverage_80,
            "coverage95": self.coverage_95,
            "brier": self.brier,
            "brierClimatology": self.brier_climatology,
            "brierSkill": self.brier_skill,
            "eventRate": self.event_rate,
            "leadTimesHours": self.lead_times_hours,
            "mae": self.mae,
        }


def backtest(
    series: pl.DataFrame,
    *,
    threshold: float,
    direction: Direction,
    horizon_hours: int = 24,
    step_hours: int = 6,
    min_history_hours: int = 72,
    failure_times: Sequence[datetime] | None = None,
    bounds: tuple[float, float] = (-math.inf, math.inf),
    n_paths: int = 1000,
    time_col: str = "bucket_start",
    value_col: str = "value",
) -> BacktestReport:
    """Replay history: every ``step_hours`` after ``min_history_hours``, forecast from the data up to that
    origin only and score it against what happened next.

    * coverage: share of realised hourly values inside the 80 % / 95 % intervals (all steps, all origins);
    * Brier score of the crossing probability for "crosses the threshold within the horizon", against a
      causal climatology (the share of past horizon-long windows, before the origin, that crossed);
    * lead time per failure time: hours between the first origin in the horizon before the failure whose
      probability was >= 0.5 and the failure (None: not predicted).
    """
    hist = hourly(series, time_col, value_col)
    t = hist["bucket_start"]
    y = hist["value"].to_numpy()
    n = y.size
    h = int(horizon_hours)
    hit = (y > threshold) if direction == "above" else (y < threshold)
    rows = []
    in80 = in95 = total = 0
    abs_err = 0.0
    for o in range(int(min_history_hours), n - 1, int(step_hours)):
        fut = y[o : o + h]
        if fut.size == 0:
            break
        fc = forecast(hist[:o], h, bounds=bounds)
        f = fc.frame[: fut.size]
        in80 += int(((fut >= f["lower_80"].to_numpy()) & (fut <= f["upper_80"].to_numpy())).sum())
        in95 += int(((fut >= f["lower_95"].to_numpy()) & (fut <= f["upper_95"].to_numpy())).sum())
        total += fut.size
        abs_err += float(np.abs(fut - f["forecast"].to_numpy()).sum())
        prob = failure_probability(fc, threshold, direction, n_paths=n_paths, seed=o)
        past = hit[:o]
        if past.size >= h:
            win = np.convolve(past.astype(float), np.ones(h), mode="valid") > 0
            clim = float(win.mean())
        else:
            clim = float(past.any())
        complete = fut.size == h
        rows.append(
            {
                "origin": t[o - 1],
                "probability": prob,
                "climatology": clim,
                "event": bool(hit[o : o + h].any()),
                "complete": complete,
            }
        )
    per = pl.DataFrame(
        rows,
        schema={
            "origin": pl.Datetime("us", "UTC"),
            "probability": pl.Float64,
            "climatology": pl.Float64,
            "event": pl.Boolean,
            "complete": pl.Boolean,
        },
    )
    scored = per.filter(pl.col("complete"))
    if scored.height:
        ev = scored["event"].cast(pl.Float64).to_numpy()
        brier = float(np.mean((scored["probability"].to_numpy() - ev) ** 2))
        brier_c = float(np.mean((scored["climatology"].to_numpy() - ev) ** 2))
        rate = float(ev.mean())
    else:
        brier = brier_c = rate = float("nan")
    skill = 1 - brier / brier_c if brier_c and brier_c > 0 else float("nan")
    leads: list[float | None] = []
    for ft in failure_times or []:
        ft_us = pl.Series([ft]).cast(pl.Datetime("us", "UTC"))[0]
        window = per.filter(
            (pl.col("origin") < ft_us)
            & (pl.col("origin") >= ft_us - timedelta(hours=h))
            & (pl.col("probability") >= 0.5)
        )
        leads.append((ft_us - window["origin"][0]).total_seconds() / 3600 if window.height else None)
    return BacktestReport(
        origins=per.height,
        coverage_80=in80 / total if total else float("nan"),
        coverage_95=in95 / total if total else float("nan"),
        brier=brier,
        brier_climatology=brier_c,
        brier_skill=skill,
        event_rate=rate,
        lead_times_hours=leads,
        mae=abs_err / total if total else float("nan"),
        per_origin=per,
    )


# ------------------------------------------------------------------------------------ method comparison


def synthetic_hourly(n_series: int, days: int = 14, seed: int = 11, trend: bool = True) -> list[np.ndarray]:
    """Hourly series with daily seasonality, AR(1) noise and a linear trend (``trend``) or, instead, a
    temporary drift that stops (the case where extrapolating a trend misleads)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_series):
        n = days * 24
        i = np.arange(n)
        amp = rng.uniform(5, 30)
        noise = np.zeros(n)
        e = rng.normal(0, rng.uniform(1, 5), n)
        phi = rng.uniform(0.0, 0.7)
        for k in range(1, n):
            noise[k] = phi * noise[k - 1] + e[k]
        if trend:
            drift = rng.uniform(-0.3, 0.3) * i
        else:
            a, b = sorted(rng.integers(0, n, 2))
            drift = rng.uniform(-1.0, 1.0) * np.clip(i - a, 0, max(b - a, 1))
        y = (
            rng.uniform(50, 300)
            + amp * np.sin(2 * np.pi * (i + rng.integers(0, 24)) / 24)
            + 0.3 * amp * np.sin(4 * np.pi * i / 24)
            + drift
            + noise
        )
        out.append(y)
    return out


def compare_methods(
    n_series: int = 12, days: int = 14, origins: int = 4, sarimax: bool = True, trend: bool = True
) -> pl.DataFrame:
    """Backtest candidate forecasters on :func:`synthetic_hourly` (24 h ahead, ``origins`` daily origins
    at the end of each series): MAE, 80 %/95 % interval coverage, mean 95 % width and fit time."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    z80, z95 = stats.norm.ppf(0.9), stats.norm.ppf(0.975)

    def ets(kind: str):
        def run(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            kw = {
                "error": "add",
                "trend": "add",
                "seasonal": "add",
                "seasonal_periods": 24,
                "initialization_method": "heuristic",
                "damped_trend": kind == "AAdA",
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = ETSModel(y, **kw).fit(disp=False, maxiter=200)
            imp = _impulse(
                float(res.smoothing_level),
                float(res.smoothing_trend),
                float(res.smoothing_seasonal),
                float(res.damping_trend) if kind == "AAdA" else 1.0,
                24,
                24,
            )
            sd = math.sqrt(float(res.mse)) * np.sqrt(1 + np.concatenate([[0.0], np.cumsum(imp**2)])[:24])
            return np.asarray(res.forecast(24)), sd

        return run

    def sarima(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = SARIMAX(y, order=(1, 0, 1), seasonal_order=(0, 1, 1, 24)).fit(disp=False)
        f = res.get_forecast(24)
        return np.asarray(f.predicted_mean), np.sqrt(np.asarray(f.var_pred_mean))

    def snaive(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = y[24:] - y[:-24]
        return y[-24:].copy(), np.full(24, float(np.std(d)))

    methods = {"ETS(A,Ad,A)": ets("AAdA"), "ETS(A,A,A)": ets("AAA"), "seasonal naive": snaive}
    if sarimax:
        methods["SARIMAX(1,0,1)(0,1,1)24"] = sarima
    data = synthetic_hourly(n_series, days, trend=trend)
    rows = []
    for name, fn in methods.items():
        err = c80 = c95 = width = cnt = 0.0
        t0 = time.perf_counter()
        fits = 0
        for y in data:
            for k in range(origins, 0, -1):
                o = y.size - 24 * k
                mean, sd = fn(y[:o])
                fits += 1
                fut = y[o : o + 24]
                err += float(np.abs(fut - mean).sum())
                c80 += float((np.abs(fut - mean) <= z80 * sd).sum())
                c95 += float((np.abs(fut - mean) <= z95 * sd).sum())
                width += float((2 * z95 * sd).sum())
                cnt += fut.size
        rows.append(
            {
                "method": name,
                "MAE": err / cnt,
                "coverage_80": c80 / cnt,
                "coverage_95": c95 / cnt,
                "width_95": width / cnt,
                "seconds_per_fit": (time.perf_counter() - t0) / fits,
            }
        )
    return pl.DataFrame(rows)
