# ruff: noqa: E402
"""The AI-ops pipeline against the demo's ground truth, in memory: the default demo dataset (7 days, 6
components, seed 42, as ``autopilot demo`` generates it) through the health core functions and the AI-ops
code the assets run. Pinned because the data is seeded; the multi-seed figures are in docs/AI_OPS_GUIDE.md
(``bench/bench_aiops_demo.py``)."""

from __future__ import annotations

import os

os.environ.setdefault(
    "OPENBLAS_NUM_THREADS", "1"
)  # before numpy loads: see docs/AI_OPS_GUIDE.md, Performance

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from autopilot_pipeline.aiops import evaluation
from autopilot_pipeline.aiops.detection import score_window
from autopilot_pipeline.aiops.forecasting import clean_history, predict_at
from autopilot_pipeline.core import demo

END = datetime(2026, 3, 4, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_week() -> tuple[demo.DemoData, pl.DataFrame, pl.DataFrame]:
    data = demo.generate(7, 6, 42, END, app_scale=0.01)
    series = evaluation.hourly_series_from_raw(data.health_log, data.metric_samples)
    scores = score_window(
        series, series["bucket_start"].min(), counts=evaluation.counts_from_health(data.health_log)
    )
    return data, series, scores


def test_every_incident_is_detected_with_at_most_one_false_alarm_per_component_week(demo_week):
    data, series, scores = demo_week
    report = evaluation.detection_report(
        scores.filter(pl.col("is_anomaly")),
        data.incidents,
        span_start=series["bucket_start"].min() + timedelta(hours=30),
        span_end=END,
        components=6,
    )
    assert report.detected == report.incidents.height == 5
    assert sorted(report.incidents["kind"]) == sorted(demo.INCIDENT_KINDS)
    assert report.false_alarms_per_component_week <= 1.0


def test_the_seed_rule_alone_would_flood_and_the_gate_keeps_the_bursts(demo_week):
    data, series, scores = demo_week
    counts = evaluation.counts_from_health(data.health_log)
    ungated = score_window(series, series["bucket_start"].min(), counts=counts, alpha=float("inf"))
    span = {
        "span_start": series["bucket_start"].min() + timedelta(hours=30),
        "span_end": END,
        "components": 6,
    }
    loose = evaluation.detection_report(ungated.filter(pl.col("is_anomaly")), data.incidents, **span)
    gated = evaluation.detection_report(scores.filter(pl.col("is_anomaly")), data.incidents, **span)
    # Alarms come in episodes (at most one per series per QUIET hours), so the flood of "3x baseline" on
    # ~1 error an hour shows as several times the gated false-alarm episodes, each a page.
    assert loose.false_alarms >= 5 and loose.false_alarms >= 3 * max(gated.false_alarms, 1)
    assert gated.detected == loose.detected == 5


def test_degradation_risk_rises_before_the_outage(demo_week):
    data, series, scores = demo_week
    (lead,) = evaluation.failure_lead_times(series, data.incidents, scores=scores, n_paths=500)
    assert lead.failure_at is not None
    assert lead.lead_hours is not None and lead.lead_hours >= 1
    early = [r for o, r, _m in lead.risk_by_origin if o < lead.failure_at - timedelta(hours=12)]
    assert max(early) < 0.5  # no warning half a day ahead, while the component was still healthy


def test_cleaning_removes_past_outages_but_keeps_the_recent_hours(demo_week):
    data, series, scores = demo_week
    outage = data.incidents.filter(pl.col("kind") == "outage").row(0, named=True)
    after = outage["ended_at"] + timedelta(hours=30)
    cleaned = clean_history(series.filter(pl.col("bucket_start") < after), scores, after)
    uptime = cleaned.filter((pl.col("component") == outage["component"]) & (pl.col("metric") == "uptime_pct"))
    assert uptime["value"].min() > 99  # the outage hours were replaced by the detector's expectation
    assert uptime.filter(pl.col("cleaned")).height >= 1
    right_after = outage["ended_at"].replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    raw = clean_history(series.filter(pl.col("bucket_start") < right_after), scores, right_after)
    recent = raw.filter((pl.col("component") == outage["component"]) & (pl.col("metric") == "uptime_pct"))
    assert recent["value"].min() < 90  # within keep_recent_hours the outage is forecast as it is

    preds, _ = predict_at(series, after, scores=scores, n_paths=500, include_forecast=False)
    risk = max(p["probability"] for p in preds if p["component"] == outage["component"])
    assert risk < 0.5  # a day after the outage the component is not "likely to fail" any more
