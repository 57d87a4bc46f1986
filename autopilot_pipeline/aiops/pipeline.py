"""The AI-ops tasks on a database connection: read the window, call the pure analytics, write the results.

The Dagster assets (``defs/aiops``), ``autopilot analyze`` and ``autopilot backtest`` share these functions,
so what the CLI prints is what the assets store. Each task works at one analysis time ``as_of`` (an hour
boundary; only complete hours before it are used) and, with ``write``, replaces exactly its own rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from autopilot_pipeline.aiops import store
from autopilot_pipeline.aiops.detection import score_window
from autopilot_pipeline.aiops.forecasting import predict_at
from autopilot_pipeline.aiops.insights import add_predictive_scaling, build_facts, generate_insights
from autopilot_pipeline.aiops.llm import LLMOutcome, narrate
from autopilot_pipeline.aiops.settings import AiopsSettings
from autopilot_pipeline.aiops.trends import analyze_trends
from autopilot_pipeline.integrations.openai_chat import LLMSettings

__all__ = [
    "AnomalyRun",
    "InsightsRun",
    "PredictionRun",
    "TrendRun",
    "resolve_as_of",
    "run_anomalies",
    "run_insights",
    "run_optimizations",
    "run_predictions",
    "run_trends",
    "trend_dicts",
]

HOUR = timedelta(hours=1)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def resolve_as_of(
    conn: psycopg.Connection,
    requested: datetime | None = None,
    now: datetime | None = None,
    target: str = store.DEFAULT_TARGET,
) -> datetime:
    """The analysis time: ``requested`` (floored to the hour), else the current hour's start, or the end of
    the data when the data stops earlier (so an old database is analysed where its data is)."""
    if requested is not None:
        if requested.tzinfo is None:
            raise ValueError(f"analysis time {requested.isoformat()} has no time zone")
        return floor_hour(requested)
    cap = floor_hour(now or datetime.now(UTC))
    end = store.data_end(conn, target)
    return cap if end is None else min(cap, floor_hour(end))


# ------------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class AnomalyRun:
    as_of: datetime
    window_start: datetime
    series: pl.DataFrame  # training history + scored window
    scores: pl.DataFrame  # every scored point of the window (aiops.detection.SCORE_SCHEMA)
    written: int = 0
    logged: int = 0

    @property
    def anomalies(self) -> pl.DataFrame:
        return self.scores.filter(pl.col("is_anomaly"))


def run_anomalies(
    conn: psycopg.Connection,
    as_of: datetime,
    settings: AiopsSettings | None = None,
    *,
    write: bool = True,
    target: str = store.DEFAULT_TARGET,
) -> AnomalyRun:
    """Score the last ``scored_hours`` before ``as_of`` (trained on ``history_hours`` before them) and, with
    ``write``, replace that window in analytics.anomalies and the AI-ops rows of automation.health_log."""
    s = settings or AiopsSettings()
    start = as_of - s.scored_hours * HOUR
    series = store.read_series(conn, start - s.history_hours * HOUR, as_of, target)
    counts = store.read_counts(conn, start, as_of, target)
    scores = score_window(series, start, counts=counts, alpha=s.significance_alpha, workers=s.workers)
    written = logged = 0
    if write:
        written, logged = store.write_scores(conn, scores, start, as_of, as_of, target)
    return AnomalyRun(as_of, start, series, scores, written, logged)


def _trend_rows(frame: pl.DataFrame, window_hours: int) -> pl.DataFrame:
    """:func:`analyze_trends` output in the column names of analytics.trends."""
    return frame.select(
        pl.lit(window_hours).cast(pl.Int64).alias("window_hours"),
        "component",
        "metric",
        "trend",
        "slope",
        pl.col("slopePerDay").alias("slope_per_day"),
        pl.col("slopeCI95Low").alias("slope_ci_low"),
        pl.col("slopeCI95High").alias("slope_ci_high"),
        pl.col("pValue").alias("p_value"),
        pl.col("rSquared").alias("r_squared"),
        "confidence",
        pl.col("dataPoints").cast(pl.Int64).alias("data_points"),
        pl.col("mannKendallP").alias("mann_kendall_p"),
        pl.col("mannKendallTau").alias("mann_kendall_tau"),
        pl.col("theilSenSlope").alias("theil_sen_slope"),
        pl.col("windowStart").alias("window_start"),
        pl.col("windowEnd").alias("window_end"),
    )


@dataclass(frozen=True)
class TrendRun:
    as_of: datetime
    series: pl.DataFrame
    trends: pl.DataFrame  # aiops.store.TREND_COLUMNS
    written: int = 0


def run_trends(
    conn: psycopg.Connection,
    as_of: datetime,
    settings: AiopsSettings | None = None,
    *,
    write: bool = True,
    target: str = store.DEFAULT_TARGET,
) -> TrendRun:
    """Trends of every series over each window ending at ``as_of``; with ``write``, replace the trends of
    ``as_of`` in analytics.trends."""
    s = settings or AiopsSettings()
    longest = max(s.trend_windows_hours)
    series = store.read_series(conn, as_of - longest * HOUR, as_of, target)
    parts = []
    for hours in s.trend_windows_hours:
        window = series.filter(
            pl.col("bucket_start") >= pl.lit(as_of - hours * HOUR).cast(pl.Datetime("us", "UTC"))
        )
        if window.height:
            parts.append(_trend_rows(analyze_trends(window), hours))
    trends = pl.concat(parts) if parts else pl.DataFrame(schema=store.TREND_COLUMNS)
    trends = trends.cast(store.TREND_COLUMNS).sort("window_hours", "component", "metric")  # type: ignore[arg-type]
    written = store.write_trends(conn, trends, as_of, target) if write else 0
    return TrendRun(as_of, series, trends, written)


def trend_dicts(trends: pl.DataFrame) -> list[dict[str, Any]]:
    """Trends as the seed's JSON (``trend``, ``slope``, ``confidence``, ``dataPoints``) plus the details."""
    out = []
    for r in trends.iter_rows(named=True):
        out.append(
            {
                "trend": r["trend"],
                "slope": r["slope"],
                "confidence": r["confidence"],
                "dataPoints": r["data_points"],
                "component": r["component"],
                "metric": r["metric"],
                "windowHours": r["window_hours"],
                "slopePerDay": r["slope_per_day"],
                "slopeCI95": [r["slope_ci_low"], r["slope_ci_high"]],
                "pValue": r["p_value"],
                "rSquared": r["r_squared"],
                "mannKendallP": r["mann_kendall_p"],
                "theilSenSlope": r["theil_sen_slope"],
                "windowStart": r["window_start"].isoformat() if r["window_start"] else None,
                "windowEnd": r["window_end"].isoformat() if r["window_end"] else None,
            }
        )
    return out


@dataclass(frozen=True)
class PredictionRun:
    as_of: datetime
    series: pl.DataFrame  # raw history the forecasts were made from
    predictions: list[dict[str, Any]]
    written: int = 0


def run_predictions(
    conn: psycopg.Connection,
    as_of: datetime,
    settings: AiopsSettings | None = None,
    *,
    write: bool = True,
    target: str = store.DEFAULT_TARGET,
) -> PredictionRun:
    """Failure predictions ``horizon_hours`` ahead of ``as_of`` from cleaned history (aiops.forecasting);
    with ``write``, replace the predictions of ``as_of`` in analytics.failure_predictions."""
    s = settings or AiopsSettings()
    series = store.read_series(
        conn, as_of - (s.prediction_history_hours + s.history_hours) * HOUR, as_of, target
    )
    predictions, _cleaned = predict_at(
        series,
        as_of,
        history_hours=s.prediction_history_hours,
        horizon_hours=s.horizon_hours,
        n_paths=s.n_paths,
        workers=s.workers,
    )
    for p in predictions:
        p["horizonHours"] = s.horizon_hours
        # a risk score until the failure-risk targets hold on the held-out corpus (aiops/risk.py)
        p["calibrated"] = p.get("riskName") == "probability"
    written = store.write_predictions(conn, predictions, as_of, target) if write else 0
    recent = series.filter(
        pl.col("bucket_start")
        >= pl.lit(as_of - s.prediction_history_hours * HOUR).cast(pl.Datetime("us", "UTC"))
    )
    return PredictionRun(as_of, recent, predictions, written)


def run_optimizations(
    recommendations: dict[str, Any], predictions: list[dict[str, Any]], settings: AiopsSettings | None = None
) -> dict[str, Any]:
    """The seed's optimize_system JSON: the open profiling recommendations (``recommendations``, as the
    profiling store reports them) plus predictive scaling from the failure predictions."""
    s = settings or AiopsSettings()
    return add_predictive_scaling(recommendations, predictions, s.scaling_risk)


@dataclass(frozen=True)
class InsightsRun:
    as_of: datetime
    facts: dict[str, Any]
    insights: dict[str, Any]
    llm: LLMOutcome = field(default_factory=lambda: LLMOutcome("disabled"))


def run_insights(
    conn: psycopg.Connection,
    as_of: datetime,
    settings: AiopsSettings | None = None,
    llm: LLMSettings | None = None,
    *,
    anomalies: pl.DataFrame,
    trends: pl.DataFrame,
    predictions: list[dict[str, Any]],
    optimizations: dict[str, Any] | None = None,
    write: bool = True,
    target: str = store.DEFAULT_TARGET,
    source: psycopg.Connection | None = None,
) -> InsightsRun:
    """Deterministic insights of ``target``'s last ``insights_hours`` before ``as_of``, with the LLM narrative
    when configured (its failure is recorded, never raised); with ``write``, replace the row of ``as_of`` in
    analytics.insights. Releases are read from ``source``, the target's own database (default: ``conn``)."""
    s = settings or AiopsSettings()
    start = as_of - s.insights_hours * HOUR
    facts = build_facts(
        window_start=start,
        window_end=as_of,
        components=store.health_facts(conn, start, as_of, target),
        releases=store.release_facts(source or conn, start, as_of),
        anomalies=anomalies,
        trends=trends,
        predictions=predictions,
        optimizations=optimizations,
    )
    insights = generate_insights(facts)
    outcome = narrate(conn, facts, insights, llm or LLMSettings())
    if outcome.text:
        insights["aiAnalysis"] = outcome.text
    elif outcome.status == "failed":
        insights["aiAnalysisError"] = outcome.error
    if write:
        store.write_insights(
            conn,
            {
                "generated_at": as_of,
                "window_start": start,
                "window_end": as_of,
                "health": insights["health"],
                "summary": insights["summary"],
                "insights": insights,
                "facts": facts,
                "ai_status": outcome.status,
                "ai_error": outcome.error,
                "model": outcome.model,
                "input_hash": outcome.input_hash,
                "prompt_tokens": outcome.usage.get("prompt_tokens"),
                "completion_tokens": outcome.usage.get("completion_tokens"),
                "total_tokens": outcome.usage.get("total_tokens"),
            },
            target,
        )
    return InsightsRun(as_of, facts, insights, outcome)
