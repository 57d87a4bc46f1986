"""Trend analysis: pinned statsmodels numbers, the robust checks, metric semantics and the frame API."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import statsmodels.api as sm
from numpy.testing import assert_allclose
from scipy import stats
from scipy.signal import lfilter

from autopilot_pipeline.aiops.trends import analyze_trend, analyze_trends, mann_kendall, theil_sen

T0 = datetime(2025, 3, 3, tzinfo=UTC)
HOURS = [T0 + timedelta(hours=k) for k in range(168)]


def _series(seed: int, slope_per_hour: float = 0.0, sd: float = 5.0) -> np.ndarray:
    return 100 + slope_per_hour * np.arange(168) + np.random.default_rng(seed).normal(0, sd, 168)


def test_pinned_ols_numbers_on_fixed_data() -> None:
    y = _series(1, slope_per_hour=0.1)
    res = analyze_trend(HOURS, y, higher_is_better=False)
    # Independent reference: plain statsmodels OLS gives the same slope and R^2.
    ref = sm.OLS(y, sm.add_constant(np.arange(168.0))).fit()
    assert_allclose(res.slope, ref.params[1], rtol=1e-10)
    assert_allclose(res.r_squared, ref.rsquared, rtol=1e-10)
    assert_allclose(res.slope_per_day, 24 * res.slope, rtol=1e-12)
    # Pinned values (regression): slope, its 95 % CI and p-value with the autocorrelation-aware error.
    assert_allclose(res.slope, 0.0982891768, rtol=1e-8)
    assert_allclose(res.r_squared, 0.5334361216, rtol=1e-8)
    assert_allclose([res.slope_ci_low, res.slope_ci_high], [0.08420304, 0.11237531], rtol=1e-6)
    assert res.p_value < 1e-20 and res.mann_kendall_p < 1e-20
    assert res.trend == "degrading" and res.data_points == 168
    assert res.confidence > 0.999


def test_mann_kendall_matches_textbook_on_a_monotone_series() -> None:
    t = np.arange(10.0)
    p, tau = mann_kendall(t, t * 2 + 1)
    # S = 45, var = n(n-1)(2n+5)/18 = 125, z = (S - 1) / sqrt(var)
    assert_allclose(p, 2 * stats.norm.sf(44 / math.sqrt(125)), rtol=1e-12)
    assert tau == 1.0


def test_theil_sen_ignores_an_outlier() -> None:
    t = np.arange(50.0)
    y = 3.0 * t + 7
    y[10] = 1e6
    assert_allclose(theil_sen(t, y), 3.0)


def test_single_spike_does_not_make_a_trend() -> None:
    y = _series(2)
    y[-1] += 400  # one huge spike at the end of the window
    res = analyze_trend(HOURS, y, higher_is_better=False)
    assert res.trend == "stable"


def test_direction_semantics() -> None:
    up = _series(3, slope_per_hour=0.2)
    down = _series(3, slope_per_hour=-0.2)
    assert analyze_trend(HOURS, up, higher_is_better=False).trend == "degrading"  # latency rising
    assert analyze_trend(HOURS, up, higher_is_better=True).trend == "improving"  # uptime rising
    assert analyze_trend(HOURS, down, higher_is_better=True).trend == "degrading"
    assert analyze_trend(HOURS, _series(3), higher_is_better=True).trend == "stable"


def test_autocorrelated_noise_rarely_makes_a_trend() -> None:
    """AR(1) noise with phi = 0.8 and no trend: the false-trend rate stays near the 5 % level."""
    rng = np.random.default_rng(4)
    false = sum(
        analyze_trend(HOURS, lfilter([1.0], [1.0, -0.8], rng.normal(size=168)), higher_is_better=False).trend
        != "stable"
        for _ in range(100)
    )
    assert false <= 12


def test_min_change_and_short_or_flat_series() -> None:
    y = _series(5, slope_per_hour=0.1)
    assert analyze_trend(HOURS, y, higher_is_better=False, min_change=100.0).trend == "stable"
    short = analyze_trend(HOURS[:5], y[:5], higher_is_better=False)
    assert short.trend == "stable" and short.data_points == 5 and short.p_value == 1.0
    flat = analyze_trend(HOURS, np.full(168, 99.9), higher_is_better=True)
    assert flat.trend == "stable" and flat.slope == 0.0


def test_seed_shape() -> None:
    d = analyze_trend(HOURS, _series(6, slope_per_hour=-0.1), higher_is_better=True).to_dict()
    assert list(d)[:4] == ["trend", "slope", "confidence", "dataPoints"]
    assert d["trend"] == "degrading" and d["slope"] < 0 and 0 <= d["confidence"] <= 1


def test_analyze_trends_frame_groups_window_and_defaults() -> None:
    rows = []
    for comp, slope in (("api", 0.2), ("web", 0.0)):
        for metric in ("p95_ms", "uptime_pct"):
            sign = 1 if metric == "p95_ms" else -1
            y = _series(
                7,
                slope_per_hour=sign * slope * (1 if metric == "p95_ms" else 0.01),
                sd=5 if metric == "p95_ms" else 0.05,
            )
            rows.append(
                pl.DataFrame({"component": comp, "metric": metric, "bucket_start": HOURS, "value": y})
            )
    frame = pl.concat(rows)
    out = analyze_trends(frame, window=timedelta(days=3))
    assert out.height == 4
    assert {"component", "metric", "trend", "slope", "confidence", "dataPoints"} <= set(out.columns)
    assert (out["dataPoints"] == 72).all()
    got = {(r["component"], r["metric"]): r["trend"] for r in out.iter_rows(named=True)}
    assert got[("api", "p95_ms")] == "degrading"  # latency up: degrading (default for latency)
    assert got[("api", "uptime_pct")] == "degrading"  # uptime down: degrading (uptime: higher is better)
    assert got[("web", "p95_ms")] == "stable" and got[("web", "uptime_pct")] == "stable"
