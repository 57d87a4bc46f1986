"""The seed's five AI-ops tasks by name, computed fresh or read back from the latest materialization.

``autopilot analyze TASK`` computes (:func:`compute`); the HTTP analyzer serves what the AI-ops assets stored
(:func:`stored`) and computes only when asked. Both go through :mod:`autopilot_pipeline.aiops.pipeline` and
:mod:`autopilot_pipeline.aiops.store` (and optimize_system through the profiling store's open
recommendations), so every door answers with the same code and the same JSON shape:
a list for detect_anomalies, predict_failures and analyze_trends, an object for generate_insights and
optimize_system (``{"totalOptimizations", "optimizations": [...], "estimatedImpact"}``).
Every task works on one monitored target's rows (``default``: the configured database).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
import psycopg

from autopilot_pipeline.aiops import pipeline, store
from autopilot_pipeline.aiops.detection import seed_anomalies
from autopilot_pipeline.aiops.llm import LLMOutcome
from autopilot_pipeline.aiops.settings import AiopsSettings
from autopilot_pipeline.integrations.openai_chat import LLMSettings
from autopilot_pipeline.profiling.store.recommendations import optimize_system

DEFAULT_TARGET = store.DEFAULT_TARGET

__all__ = ["TASKS", "TaskResult", "compute", "latest_times", "stored"]

TASKS = ("detect_anomalies", "predict_failures", "analyze_trends", "generate_insights", "optimize_system")


@dataclass(frozen=True)
class TaskResult:
    """A task's answer: ``result`` in the seed's shape, the analysis time it describes (None when nothing is
    stored yet) and, for generate_insights, what the LLM did."""

    task: str
    as_of: datetime | None
    result: Any
    llm: LLMOutcome | None = None


# ------------------------------------------------------------------------------------------------- fresh


@dataclass(frozen=True)
class _Run:
    """One fresh computation: where (the pipeline's database, the target's own for its release logs),
    when, for whom, and whether to replace the stored rows."""

    conn: psycopg.Connection
    as_of: datetime
    save: bool
    llm: LLMSettings
    target: str
    source: psycopg.Connection | None


def _detect(r: _Run) -> TaskResult:
    scores = pipeline.run_anomalies(r.conn, r.as_of, write=r.save, target=r.target).scores
    return TaskResult("detect_anomalies", r.as_of, seed_anomalies(scores))


def _predict(r: _Run) -> TaskResult:
    predictions = pipeline.run_predictions(r.conn, r.as_of, write=r.save, target=r.target).predictions
    return TaskResult("predict_failures", r.as_of, predictions)


def _trends(r: _Run) -> TaskResult:
    trends = pipeline.run_trends(r.conn, r.as_of, write=r.save, target=r.target).trends
    return TaskResult("analyze_trends", r.as_of, pipeline.trend_dicts(trends))


def _insights(r: _Run) -> TaskResult:
    anomalies = pipeline.run_anomalies(r.conn, r.as_of, write=r.save, target=r.target)
    trends = pipeline.run_trends(r.conn, r.as_of, write=r.save, target=r.target)
    predictions = pipeline.run_predictions(r.conn, r.as_of, write=r.save, target=r.target)
    recommendations = optimize_system(r.conn, refresh=False, target=r.target)
    report = pipeline.run_optimizations(recommendations, predictions.predictions)
    run = pipeline.run_insights(
        r.conn,
        r.as_of,
        llm=r.llm,
        anomalies=anomalies.anomalies,
        trends=trends.trends,
        predictions=predictions.predictions,
        optimizations=report,
        write=r.save,
        target=r.target,
        source=r.source,
    )
    return TaskResult("generate_insights", r.as_of, run.insights, run.llm)


def _optimize(r: _Run) -> TaskResult:
    predictions = pipeline.run_predictions(r.conn, r.as_of, write=r.save, target=r.target)
    recommendations = optimize_system(r.conn, refresh=False, target=r.target)
    return TaskResult(
        "optimize_system", r.as_of, pipeline.run_optimizations(recommendations, predictions.predictions)
    )


_COMPUTE: dict[str, Callable[[_Run], TaskResult]] = {
    "detect_anomalies": _detect,
    "predict_failures": _predict,
    "analyze_trends": _trends,
    "generate_insights": _insights,
    "optimize_system": _optimize,
}


def compute(
    conn: psycopg.Connection,
    task: str,
    as_of: datetime,
    save: bool = False,
    llm: LLMSettings | None = None,
    target: str = DEFAULT_TARGET,
    source: psycopg.Connection | None = None,
) -> TaskResult:
    """Run ``task`` for ``target`` at analysis time ``as_of`` as the assets do; with ``save``, replace its
    stored rows. ``source`` is the target's own database, whose release logs the insights read (default:
    ``conn``, right for ``default``)."""
    return _COMPUTE[task](_Run(conn, as_of, save, llm or LLMSettings(), target, source))


# ------------------------------------------------------------------------------------------------ stored

# task -> the analysis whose time dates its stored answer (optimize_system reads the stored predictions)
_DATED_BY = {
    "detect_anomalies": "anomalies",
    "predict_failures": "predictions",
    "analyze_trends": "trends",
    "generate_insights": "insights",
    "optimize_system": "predictions",
}


def latest_times(
    conn: psycopg.Connection, now: datetime | None = None, target: str = DEFAULT_TARGET
) -> dict[str, datetime | None]:
    """``target``'s latest stored analysis time of each task at or before ``now``, in one cheap round trip."""
    times = store.latest_analyses(conn, now or datetime.now(UTC), target)
    return {task: times[kind] for task, kind in _DATED_BY.items()}


def stored(
    conn: psycopg.Connection, task: str, as_of: datetime | None, target: str = DEFAULT_TARGET
) -> TaskResult:
    """``task``'s answer for ``target`` as the AI-ops assets stored it at analysis time ``as_of`` (from
    :func:`latest_times`); nothing is computed but optimize_system's summary of the open recommendations."""
    if task == "detect_anomalies":
        if as_of is None:
            return TaskResult(task, None, [])
        start = as_of - AiopsSettings().scored_hours * pipeline.HOUR
        return TaskResult(
            task, as_of, seed_anomalies(store.read_anomalies(conn, start, as_of, target=target))
        )
    if task == "predict_failures":
        return TaskResult(task, as_of, store.read_predictions(conn, as_of, target) if as_of else [])
    if task == "analyze_trends":
        trends = store.read_trends(conn, as_of, target) if as_of else pl.DataFrame(schema=store.TREND_COLUMNS)
        return TaskResult(
            task, as_of, pipeline.trend_dicts(trends.sort("window_hours", "component", "metric"))
        )
    if task == "generate_insights":
        return TaskResult(task, as_of, store.read_insights(conn, as_of, target) if as_of else None)
    if task == "optimize_system":
        predictions = store.read_predictions(conn, as_of, target) if as_of else []
        recommendations = optimize_system(conn, refresh=False, target=target)
        return TaskResult(task, as_of, pipeline.run_optimizations(recommendations, predictions))
    raise ValueError(f"unknown task {task!r}")
