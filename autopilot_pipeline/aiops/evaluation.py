"""Scoring the AI-ops analytics against ground truth (the demo's ``demo.incidents``). Pure.

* Detection: an incident is detected when an anomaly on its component falls in an hourly bucket that
  overlaps [started_at - margin, ended_at + margin].
* False alarms: anomalous (component, hour) buckets outside every incident window of that component
  (± the same margin); consecutive hours count as one alarm. Reported per component-week of scored data.
* Lead time of the failure risk: for each degradation incident, the failure is the first hour of the
  incident whose uptime is below the critical 90 % (the outage the degradation ends in). Hourly origins
  over the 24 h before it replay the pipeline's predictions (:func:`predict_at`) on the data before each
  origin only; the component's risk is its largest probability over its metrics (what an alert on
  ``failure_probability`` sees). Lead time = failure hour - first origin whose risk reached 0.5.
* Calibration: the same predictions replayed every few hours over the whole span, scored against what
  followed: interval coverage, the Brier score against a causal climatology, warnings at >= 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from autopilot_pipeline.aiops.detection import score_window
from autopilot_pipeline.aiops.forecasting import CLEAN_MIN_SCORE, predict_at
from autopilot_pipeline.health import samples as metrics
from autopilot_pipeline.health import tables as health

__all__ = [
    "CalibrationReport",
    "DetectionReport",
    "LeadTime",
    "calibration_report",
    "detection_report",
    "counts_from_health",
    "failure_lead_times",
    "hourly_series_from_raw",
]

HOUR = timedelta(hours=1)
TS = pl.Datetime("us", "UTC")
CRITICAL_UPTIME_PCT = 90.0


# ------------------------------------------------------------------------- series from raw rows (in memory)


def _with_ids(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame
        if "id" in frame.columns
        else frame.with_row_index("id").with_columns(pl.col("id").cast(pl.Int64))
    )


def hourly_series_from_raw(health_log: pl.DataFrame, metric_samples: pl.DataFrame) -> pl.DataFrame:
    """The long hourly series the AI-ops assets read from the analytics tables, computed in memory from
    raw ``health_log`` and ``metric_samples`` frames with the same core functions as the health assets."""
    clean, _bad, _counts = health.validate_health(_with_ids(health_log).select(list(health.HEALTH_SCHEMA)))
    samples, _bad_s, _counts_s = metrics.validate_samples(
        _with_ids(metric_samples).select(list(metrics.SAMPLE_SCHEMA))
    )
    uptime = health.uptime(clean)
    errors = health.error_rates(clean)
    latency = health.response_times(clean)
    custom = metrics.hourly_samples(samples)
    key = ["component", "bucket_start"]
    parts = [
        uptime.select(*key, pl.lit("uptime_pct").alias("metric"), pl.col("uptime_pct").alias("value")),
        uptime.select(
            *key, pl.lit("degraded_ratio").alias("metric"), pl.col("degraded_ratio").alias("value")
        ),
        errors.select(*key, pl.lit("error_ratio").alias("metric"), pl.col("error_ratio").alias("value")),
        latency.select(*key, pl.lit("p95_ms").alias("metric"), pl.col("p95_ms").alias("value")),
        latency.select(*key, pl.lit("avg_ms").alias("metric"), pl.col("avg_ms").alias("value")),
        custom.select(*key, pl.col("metric_name").alias("metric"), pl.col("avg_value").alias("value")),
    ]
    return (
        pl.concat([p.cast({"bucket_start": TS, "value": pl.Float64}) for p in parts])
        .drop_nulls("value")
        .select("component", "metric", "bucket_start", "value")
        .sort("component", "metric", "bucket_start")
    )


def counts_from_health(health_log: pl.DataFrame) -> pl.DataFrame:
    """The significance gate's counts (component, metric, bucket_start, trials, failures) from raw
    ``health_log`` rows, as the error_rates_hourly and uptime_hourly tables hold them, in memory (the same
    proportions as ``aiops.store.read_counts``)."""
    clean, _bad, _counts = health.validate_health(_with_ids(health_log).select(list(health.HEALTH_SCHEMA)))
    errors = health.error_rates(clean)
    uptime = health.uptime(clean)
    return pl.concat(
        [
            _proportion(errors, "error_ratio", pl.col("events"), pl.col("errors")),
            _proportion(uptime, "uptime_pct", pl.col("checks"), pl.col("checks") - pl.col("up_checks")),
            _proportion(uptime, "degraded_ratio", pl.col("checks"), pl.col("degraded_checks")),
        ]
    )


def _proportion(table: pl.DataFrame, metric: str, trials: pl.Expr, failures: pl.Expr) -> pl.DataFrame:
    """One proportion's rows of the gate's counts (:data:`aiops.detection.COUNTS_SCHEMA`)."""
    return table.select(
        "component",
        pl.lit(metric).alias("metric"),
        "bucket_start",
        trials.cast(pl.Int64).alias("trials"),
        failures.cast(pl.Int64).alias("failures"),
    )


# ---------------------------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class DetectionReport:
    """Incidents found and false alarms of one scoring run against ground truth."""

    incidents: pl.DataFrame  # kind, component, started_at, ended_at, detected, first_anomaly, metrics
    false_alarm_hours: int
    false_alarms: int  # runs of consecutive anomalous hours outside incidents
    components: int
    weeks: float
    margin: timedelta

    @property
    def detected(self) -> int:
        return int(self.incidents["detected"].sum()) if self.incidents.height else 0

    @property
    def false_alarms_per_component_week(self) -> float:
        scale = self.components * self.weeks
        return self.false_alarms / scale if scale > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "incidents": self.incidents.height,
            "detected": self.detected,
            "missed": [
                f"{r['kind']} on {r['component']} at {r['started_at']:%Y-%m-%d %H:%M}"
                for r in self.incidents.filter(~pl.col("detected")).iter_rows(named=True)
            ],
            "byKind": {
                kind: f"{found}/{total}"
                for kind, found, total in self.incidents.group_by("kind")
                .agg(pl.col("detected").sum(), pl.len())
                .sort("kind")
                .iter_rows()
            },
            "falseAlarms": self.false_alarms,
            "falseAlarmHours": self.false_alarm_hours,
            "falseAlarmsPerComponentWeek": round(self.false_alarms_per_component_week, 3),
            "components": self.components,
            "weeks": round(self.weeks, 3),
            "marginHours": self.margin / HOUR,
        }


def _in_window(incident: dict, margin: timedelta) -> pl.Expr:
    bucket = pl.col("bucket_start")
    return (
        (pl.col("component") == incident["component"])
        & (bucket + HOUR > pl.lit(incident["started_at"] - margin).cast(TS))
        & (bucket <= pl.lit(incident["ended_at"] + margin).cast(TS))
    )


def detection_report(
    anomalies: pl.DataFrame,
    incidents: pl.DataFrame,
    *,
    span_start: datetime,
    span_end: datetime,
    components: int,
    margin: timedelta = HOUR,
) -> DetectionReport:
    """Compare ``anomalies`` (component, metric, bucket_start; anomalous rows only) with ``incidents``
    (kind, component, started_at, ended_at) over the scored span [span_start, span_end)."""
    found = anomalies.select("component", "metric", pl.col("bucket_start").cast(TS))
    rows = []
    outside = pl.lit(True)
    for inc in incidents.sort("started_at").iter_rows(named=True):
        cond = _in_window(inc, margin)
        hits = found.filter(cond).sort("bucket_start")
        rows.append(
            {
                "kind": inc["kind"],
                "component": inc["component"],
                "started_at": inc["started_at"],
                "ended_at": inc["ended_at"],
                "detected": hits.height > 0,
                "first_anomaly": hits["bucket_start"][0] if hits.height else None,
                "metrics": ", ".join(sorted(set(hits["metric"].to_list()))),
            }
        )
        outside = outside & ~cond
    table = pl.DataFrame(
        rows,
        schema={
            "kind": pl.String,
            "component": pl.String,
            "started_at": TS,
            "ended_at": TS,
            "detected": pl.Boolean,
            "first_anomaly": TS,
            "metrics": pl.String,
        },
    )
    false_hours = (
        found.filter(outside).select("component", "bucket_start").unique().sort("component", "bucket_start")
    )
    gap = pl.col("bucket_start") - pl.col("bucket_start").shift(1).over("component")
    runs = false_hours.with_columns(new=(gap != HOUR).fill_null(True)).filter("new").height
    weeks = max((span_end - span_start) / timedelta(days=7), 0.0)
    return DetectionReport(table, false_hours.height, runs, components, weeks, margin)


# ------------------------------------------------------------------------------------------ lead times


@dataclass(frozen=True)
class LeadTime:
    """Failure-risk replay before one incident."""

    component: str
    started_at: datetime
    failure_at: datetime | None  # first hour of the incident with uptime below 90 %
    lead_hours: float | None  # None: the risk never reached the bar in the lookback before the failure
    risk_by_origin: list[tuple[datetime, float, str | None]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "component": self.component,
            "startedAt": self.started_at.isoformat(),
            "failureAt": self.failure_at.isoformat() if self.failure_at else None,
            "leadHours": self.lead_hours,
            "riskByOrigin": [
                {"origin": o.isoformat(), "risk": round(r, 3), "metric": m} for o, r, m in self.risk_by_origin
            ],
        }


def failure_lead_times(
    series: pl.DataFrame,
    incidents: pl.DataFrame,
    *,
    scores: pl.DataFrame | None = None,
    kinds: Sequence[str] = ("degradation",),
    lookback_hours: int = 24,
    history_hours: int = 336,
    bar: float = 0.5,
    n_paths: int = 1000,
    clean: bool = True,
) -> list[LeadTime]:
    """Replay the failure risk hour by hour before each incident of ``kinds`` with the pipeline's own
    :func:`predict_at` (causal: each origin sees only buckets before it) and measure how early the
    component's largest probability reached ``bar``. ``scores``: the detector's scores of ``series``
    (computed here when None); ``clean=False`` replays the core forecaster on raw history instead."""
    if scores is None:
        scores = score_window(series, series["bucket_start"].min())  # type: ignore[arg-type]
    out = []
    for inc in incidents.filter(pl.col("kind").is_in(list(kinds))).sort("started_at").iter_rows(named=True):
        comp = series.filter(pl.col("component") == inc["component"])
        down = comp.filter(
            (pl.col("metric") == "uptime_pct")
            & (pl.col("value") < CRITICAL_UPTIME_PCT)
            & (pl.col("bucket_start") + HOUR > pl.lit(inc["started_at"]).cast(TS))
            & (pl.col("bucket_start") <= pl.lit(inc["ended_at"]).cast(TS))
        ).sort("bucket_start")
        failure = down["bucket_start"][0] if down.height else None
        if failure is None:
            out.append(LeadTime(inc["component"], inc["started_at"], None, None))
            continue
        risks: list[tuple[datetime, float, str | None]] = []
        for k in range(lookback_hours, 0, -1):
            origin = failure - k * HOUR
            preds, _ = predict_at(
                comp,
                origin,
                history_hours=history_hours,
                scores=scores,
                n_paths=n_paths,
                include_forecast=False,
                min_score=CLEAN_MIN_SCORE if clean else math.inf,
            )
            best = preds[0] if preds else None  # most likely first
            risks.append(
                (origin, float(best["probability"]) if best else 0.0, best["metric"] if best else None)
            )
        first = next((o for o, r, _m in risks if r >= bar), None)
        lead = (failure - first) / HOUR if first is not None else None
        out.append(LeadTime(inc["component"], inc["started_at"], failure, lead, risks))
    return out


# ---------------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CalibrationReport:
    """Causal replay of the pipeline's failure predictions over many series, scored afterwards."""

    origins: int
    predictions: int
    coverage_80: float
    coverage_95: float
    brier: float
    brier_climatology: float
    event_rate: float
    false_warnings: int  # predictions >= 0.5 whose series did not cross within the horizon
    warned_events: int  # predictions >= 0.5 whose series did cross
    per_metric: pl.DataFrame

    @property
    def brier_skill(self) -> float:
        return 1 - self.brier / self.brier_climatology if self.brier_climatology > 0 else float("nan")

    def to_dict(self) -> dict:
        def num(x: float) -> float | None:
            return round(x, 4) if math.isfinite(x) else None

        return {
            "origins": self.origins,
            "predictions": self.predictions,
            "coverage80": num(self.coverage_80),
            "coverage95": num(self.coverage_95),
            "brier": num(self.brier),
            "brierClimatology": num(self.brier_climatology),
            "brierSkill": num(self.brier_skill),
            "eventRate": num(self.event_rate),
            "falseWarnings": self.false_warnings,
            "warnedEvents": self.warned_events,
            "perMetric": [
                {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()}
                for row in self.per_metric.to_dicts()
            ],
        }


def calibration_report(
    series: pl.DataFrame,
    *,
    scores: pl.DataFrame | None = None,
    step_hours: int = 6,
    min_history_hours: int = 72,
    horizon_hours: int = 24,
    history_hours: int = 336,
    n_paths: int = 500,
    clean: bool = True,
) -> CalibrationReport:
    """Replay :func:`predict_at` every ``step_hours`` after ``min_history_hours`` over the whole span and
    score each prediction against the hours that followed: interval coverage (80 %/95 %), the Brier
    score of "crosses the threshold within the horizon" against a causal climatology (the share of
    earlier horizon-long windows of that series that crossed), and warnings at probability >= 0.5."""
    if series.is_empty():
        raise ValueError("no series to replay")
    if scores is None:
        scores = score_window(series, series["bucket_start"].min())  # type: ignore[arg-type]
    first = series["bucket_start"].min()
    last = series["bucket_start"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    h = int(horizon_hours)
    truth = series.select("component", "metric", "bucket_start", "value")
    rows = []
    origins = 0
    origin = first + min_history_hours * HOUR
    while origin + h * HOUR <= last + HOUR:
        preds, _ = predict_at(
            series,
            origin,
            history_hours=history_hours,
            horizon_hours=h,
            scores=scores,
            n_paths=n_paths,
            min_score=CLEAN_MIN_SCORE if clean else math.inf,
        )
        origins += 1
        for p in preds:
            comp, metric, thr = p["component"], p["metric"], p["threshold"]
            above = p["direction"] == "above"
            mine = truth.filter((pl.col("component") == comp) & (pl.col("metric") == metric))
            band = pl.DataFrame(p["forecast"]).with_columns(
                pl.col("bucket_start").str.to_datetime(time_zone="UTC")
            )
            fut = band.join(mine.cast({"bucket_start": TS}), on="bucket_start", how="inner")
            if fut.is_empty():
                continue
            y = fut["value"].to_numpy()
            past = mine.filter(pl.col("bucket_start") < pl.lit(origin).cast(TS))["value"].to_numpy()
            hit_past = (past > thr) if above else (past < thr)
            if hit_past.size >= h:
                clim = float((np.convolve(hit_past.astype(float), np.ones(h), mode="valid") > 0).mean())
            else:
                clim = float(hit_past.any())
            rows.append(
                {
                    "metric": metric,
                    "probability": float(p["probability"]),
                    "climatology": clim,
                    "event": bool(((y > thr) if above else (y < thr)).any()),
                    "in80": float(
                        ((y >= fut["lower_80"].to_numpy()) & (y <= fut["upper_80"].to_numpy())).sum()
                    ),
                    "in95": float(
                        ((y >= fut["lower_95"].to_numpy()) & (y <= fut["upper_95"].to_numpy())).sum()
                    ),
                    "points": float(y.size),
                }
            )
        origin += step_hours * HOUR
    df = pl.DataFrame(
        rows,
        schema={
            "metric": pl.String,
            "probability": pl.Float64,
            "climatology": pl.Float64,
            "event": pl.Boolean,
            "in80": pl.Float64,
            "in95": pl.Float64,
            "points": pl.Float64,
        },
    )
    ev = pl.col("event").cast(pl.Float64)
    per = (
        df.group_by("metric")
        .agg(
            pl.len().alias("predictions"),
            (pl.col("in80").sum() / pl.col("points").sum()).alias("coverage_80"),
            (pl.col("in95").sum() / pl.col("points").sum()).alias("coverage_95"),
            ((pl.col("probability") - ev) ** 2).mean().alias("brier"),
            ((pl.col("climatology") - ev) ** 2).mean().alias("brier_climatology"),
            ev.mean().alias("event_rate"),
            ((pl.col("probability") >= 0.5) & ~pl.col("event")).sum().alias("false_warnings"),
        )
        .sort("metric")
    )
    nan = float("nan")
    total = df["points"].sum() if df.height else 0.0
    return CalibrationReport(
        origins=origins,
        predictions=df.height,
        coverage_80=float(df["in80"].sum() / total) if total else nan,
        coverage_95=float(df["in95"].sum() / total) if total else nan,
        brier=float(df.select(((pl.col("probability") - ev) ** 2).mean()).item()) if df.height else nan,
        brier_climatology=float(df.select(((pl.col("climatology") - ev) ** 2).mean()).item())
        if df.height
        else nan,
        event_rate=float(df.select(ev.mean()).item()) if df.height else nan,
        false_warnings=df.filter((pl.col("probability") >= 0.5) & ~pl.col("event")).height,
        warned_events=df.filter((pl.col("probability") >= 0.5) & pl.col("event")).height,
        per_metric=per,
    )
