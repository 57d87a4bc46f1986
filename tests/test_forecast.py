"""Forecasts and failure probabilities: statsmodels parity, pinned numbers, coverage and the seed shape."""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from numpy.testing import assert_allclose

from autopilot_pipeline.aiops.failure_prediction import predict_failures
from autopilot_pipeline.aiops.forecast import backtest, failure_probability, forecast, hourly, threshold_for

T0 = datetime(2025, 2, 3, tzinfo=UTC)


def _hours(n: int) -> list[datetime]:
    return [T0 + timedelta(hours=k) for k in range(n)]


def _seasonal(n: int = 168, seed: int = 0, trend: float = 0.05, sd: float = 3.0) -> np.ndarray:
    i = np.arange(n)
    return 100 + 20 * np.sin(2 * np.pi * i / 24) + trend * i + np.random.default_rng(seed).normal(0, sd, n)


def _frame(y: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"bucket_start": _hours(y.size), "value": y})


def test_intervals_match_statsmodels_exact_prediction() -> None:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _seasonal()
    fc = forecast(_frame(y))
    assert fc.method == "ETS(A,Ad,A)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ETSModel(
            pd.Series(y),
            error="add",
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=24,
            initialization_method="heuristic",
        ).fit(disp=False, maxiter=200)
    frame = res.get_prediction(start=y.size, end=y.size + 23).summary_frame(alpha=0.05)
    assert_allclose(fc.frame["forecast"].to_numpy(), frame["mean"].to_numpy(), rtol=1e-10)
    assert_allclose(fc.frame["upper_95"].to_numpy(), frame["pi_upper"].to_numpy(), rtol=1e-10)
    assert_allclose(fc.frame["lower_95"].to_numpy(), frame["pi_lower"].to_numpy(), rtol=1e-10)


def test_pinned_forecast_numbers() -> None:
    fc = forecast(_frame(_seasonal()))
    assert fc.frame.height == 24 and fc.frame["bucket_start"][0] == T0 + timedelta(hours=168)
    assert_allclose(fc.sigma, 2.780349792944964, rtol=1e-4)
    assert_allclose(fc.frame["forecast"][0], 109.52221, rtol=1e-4)
    assert_allclose(fc.params["phi"], 0.845337, rtol=1e-3)
    f = fc.frame
    assert (
        (f["lower_95"] <= f["lower_80"])
        & (f["lower_80"] <= f["forecast"])
        & (f["forecast"] <= f["upper_80"])
        & (f["upper_80"] <= f["upper_95"])
    ).all()


def test_path_probability_agrees_with_statsmodels_simulate() -> None:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _seasonal()
    fc = forecast(_frame(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ETSModel(
            y,
            error="add",
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=24,
            initialization_method="heuristic",
        ).fit(disp=False, maxiter=200)
    sims = np.asarray(res.simulate(24, anchor="end", repetitions=4000, rng=np.random.default_rng(1)))
    for thr in (122.0, 125.0, 128.0):
        ours = failure_probability(fc, thr, "above", n_paths=4000, seed=2)
        theirs = float((sims > thr).any(axis=0).mean())
        assert abs(ours - theirs) < 0.04, (thr, ours, theirs)


def test_probability_rises_as_the_series_approaches_the_threshold() -> None:
    """Latency climbing towards 360 ms: the 24 h crossing probability grows with each new day."""
    n = 24 * 10
    i = np.arange(n)
    y = 200 + 10 * np.sin(2 * np.pi * i / 24) + np.where(i > 96, (i - 96) * 1.5, 0)
    y = y + np.random.default_rng(5).normal(0, 4, n)
    probs = [
        failure_probability(forecast(_frame(y[:cut])), 360.0, "above") for cut in (96, 120, 144, 168, 192)
    ]
    assert probs[0] < 0.05 and probs[-1] > 0.9
    assert all(b >= a - 0.02 for a, b in zip(probs, probs[1:], strict=False))


def test_coverage_roughly_nominal_on_synthetic_data() -> None:
    y = _seasonal(24 * 12, seed=8, trend=0.02)
    rep = backtest(_frame(y), threshold=1e9, direction="above", step_hours=12, min_history_hours=96)
    assert 0.7 <= rep.coverage_80 <= 0.92
    assert 0.87 <= rep.coverage_95 <= 0.995
    assert rep.origins >= 12 and rep.event_rate == 0.0


def test_backtest_brier_and_lead_time_on_a_degradation() -> None:
    """Uptime sliding to 80 % on day 8: the backtest scores the probability and measures the lead."""
    n = 200
    i = np.arange(n)
    rng = np.random.default_rng(9)
    y = 99.5 + rng.normal(0, 0.2, n)
    y[150:] -= np.minimum((i[150:] - 150) * 0.6, 20)
    fail = next(k for k in range(n) if y[k] < 90)
    rep = backtest(
        _frame(np.clip(y, 0, 100)),
        threshold=90.0,
        direction="below",
        step_hours=3,
        min_history_hours=96,
        failure_times=[T0 + timedelta(hours=fail)],
        bounds=(0, 100),
    )
    assert rep.lead_times_hours[0] is not None and rep.lead_times_hours[0] >= 2
    assert 0 <= rep.brier <= 1 and math.isfinite(rep.brier_climatology)
    assert rep.brier < rep.brier_climatology
    assert set(rep.to_dict()) >= {"coverage80", "coverage95", "brier", "brierClimatology", "leadTimesHours"}


def test_hourly_aggregation_fills_gaps() -> None:
    ts = [T0 + timedelta(minutes=10 * k) for k in range(36)]  # 6 hours of 10-minute data
    frame = pl.DataFrame({"bucket_start": ts, "value": [float(k // 6) for k in range(36)]})
    frame = frame.filter(pl.col("bucket_start").dt.hour() != 3)  # one missing hour
    h = hourly(frame)
    assert h.height == 6 and h["value"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_short_history_falls_back() -> None:
    fc = forecast(_frame(np.array([5.0, 6.0, 5.5, 6.2])), 6)
    assert fc.method == "naive" and fc.frame.height == 6
    with pytest.raises(ValueError, match="at least 3"):
        forecast(_frame(np.array([1.0, 2.0])))


def test_thresholds_by_metric() -> None:
    assert threshold_for("uptime_pct") == ("below", 90.0)
    assert threshold_for("p95_ms") == ("above", 10_000.0)
    assert threshold_for("memory_usage_pct") == ("above", 95.0)
    assert threshold_for("queue_depth") is None
    assert threshold_for("queue_depth", {"queue_depth": ("above", 50.0)}) == ("above", 50.0)


def test_predict_failures_seed_shape() -> None:
    n = 24 * 6
    i = np.arange(n)
    rng = np.random.default_rng(12)
    rows = []
    sinking = np.clip(99.8 - np.where(i > 100, (i - 100) * 0.2, 0) + rng.normal(0, 0.1, n), 0, 100)
    steady = np.clip(99.8 + rng.normal(0, 0.1, n), 0, 100)
    for comp, y in (("site", sinking), ("api", steady)):
        rows.append(
            pl.DataFrame({"component": comp, "metric": "uptime_pct", "bucket_start": _hours(n), "value": y})
        )
    rows.append(
        pl.DataFrame(
            {"component": "api", "metric": "queue_depth", "bucket_start": _hours(n), "value": steady}
        )
    )
    preds = predict_failures(pl.concat(rows))
    assert [p["component"] for p in preds] == ["site", "api"]  # most likely first; no threshold: skipped
    top = preds[0]
    assert list(top)[:4] == ["prediction", "probability", "timeframe", "recommendations"]
    assert top["prediction"] == "site failure likely within 24 hours" and top["probability"] > 0.7
    assert top["timeframe"] == "24 hours" and "Prepare rollback plan" in top["recommendations"]
    assert top["threshold"] == 90.0 and top["direction"] == "below" and len(top["forecast"]) == 24
    assert preds[1]["probability"] < 0.05 and preds[1]["recommendations"] == []
    assert all(0 <= p["forecast"][0]["lower_95"] <= p["forecast"][0]["upper_95"] <= 100 for p in preds)
