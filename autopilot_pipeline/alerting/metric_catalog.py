"""The alert metric catalog: what value a rule's ``metric_name`` has for each component at time ``now``.

A rule names its metric in ``automation.alert_rules.metric_name``. The name is looked up here, never put
into SQL: a built-in name maps to a computation over a short window of input frames, and any other name
is a *custom metric*, the latest ``automation.metric_samples`` value per component (the seed's
``memory_usage_pct`` example). Every window is ``(now - window, now]``: the evaluation instant is included,
later rows are not, so replaying history gives what a live evaluation would have seen.

Built-in metrics (docs/ALERTING_RULES.md, "Metric catalog"):

- ``uptime_percentage``: 100 x up checks / checks over the last hour (up = healthy or degraded);
- ``degraded_percentage``: 100 x degraded checks / checks over the last hour (answering, but struggling);
- ``errors_per_hour``: errors (error events + failed checks) in the last hour, per component with events;
- ``response_time_p95_ms`` / ``response_time_avg_ms``: over checks with a measured time in the last hour;
- ``migration_failures``: failed migrations started in the last hour, component ``database`` (0 when none);
- ``anomaly_confidence``: max ``metadata.confidence`` of AI-ops anomalies in the last hour;
- ``failure_probability``: max probability of the latest failure prediction per component (12 h staleness).

Input rows are validated with the same rules as the analytics tables (bad rows are ignored here, and
quarantined by the ingest assets). Pure: no clock, database or network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import polars as pl

from autopilot_pipeline.health import releases
from autopilot_pipeline.health import samples as metrics
from autopilot_pipeline.health import tables as health

__all__ = [
    "ANOMALY_SCHEMA",
    "BUILTIN",
    "MIGRATION_COMPONENT",
    "PREDICTION_SCHEMA",
    "VALUES_SCHEMA",
    "MetricDef",
    "MetricInputs",
    "Source",
    "custom_names",
    "metric_values",
    "rule_values",
    "sources_for",
    "window_for",
]

HEALTH_WINDOW = timedelta(hours=1)
MIGRATION_WINDOW = timedelta(hours=1)
SAMPLE_STALENESS = timedelta(minutes=5)  # like Prometheus's lookback delta: older samples are no data
ANOMALY_WINDOW = timedelta(hours=1)
PREDICTION_STALENESS = timedelta(hours=12)  # AI ops predicts every 6 hours
MIGRATION_COMPONENT = "database"

TS = pl.Datetime("us", "UTC")
ANOMALY_SCHEMA: dict[str, pl.DataType] = {
    "checked_at": TS,
    "component": pl.String(),
    "metric": pl.String(),
    "confidence": pl.String(),  # metadata->>'confidence': text, parsed leniently
}
PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "predicted_at": TS,
    "component": pl.String(),
    "metric": pl.String(),
    "probability": pl.Float64(),
}
VALUES_SCHEMA: dict[str, pl.DataType] = {
    "metric_name": pl.String(),
    "component": pl.String(),
    "value": pl.Float64(),
}


class Source(StrEnum):
    """The input a metric is computed from; the database edge reads only the sources rules need."""

    HEALTH = "health"
    MIGRATIONS = "migrations"
    SAMPLES = "samples"
    ANOMALIES = "anomalies"
    PREDICTIONS = "predictions"


@dataclass(frozen=True, slots=True)
class MetricInputs:
    """Windows of input rows at ``now``; a source not read (no rule needs it) is None.

    ``health`` has :data:`health.HEALTH_SCHEMA`, ``migrations`` :data:`releases.MIGRATION_SCHEMA`,
    ``samples`` :data:`metrics.SAMPLE_SCHEMA`, ``anomalies`` :data:`ANOMALY_SCHEMA`, ``predictions``
    :data:`PREDICTION_SCHEMA`. Rows outside a metric's window are ignored, so larger frames are fine.
    """

    now: datetime
    health: pl.DataFrame | None = None
    migrations: pl.DataFrame | None = None
    samples: pl.DataFrame | None = None
    anomalies: pl.DataFrame | None = None
    predictions: pl.DataFrame | None = None


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    source: Source
    window: timedelta
    unit: str
    description: str
    compute: Callable[[MetricInputs], pl.DataFrame]  # -> component, value


def _within(frame: pl.DataFrame | None, column: str, now: datetime, window: timedelta) -> pl.DataFrame:
    if frame is None:
        raise ValueError(f"input for this metric was not read (column {column!r})")
    at = pl.col(column)
    return frame.filter((at > pl.lit(now - window).cast(TS)) & (at <= pl.lit(now).cast(TS)))


def _health(inputs: MetricInputs) -> pl.DataFrame:
    clean, _bad, _counts = health.validate_health(
        _within(inputs.health, "checked_at", inputs.now, HEALTH_WINDOW)
    )
    return clean


def _per_component(frame: pl.DataFrame, value: pl.Expr) -> pl.DataFrame:
    return frame.group_by(pl.col("source").alias("component")).agg(value.cast(pl.Float64).alias("value"))


def _uptime(inputs: MetricInputs) -> pl.DataFrame:
    checks = _health(inputs).filter(pl.col("kind") == "health_check")
    up = pl.col("status").is_in(health.UP_STATUSES).sum()
    return _per_component(checks, 100.0 * up / pl.len())


def _degraded(inputs: MetricInputs) -> pl.DataFrame:
    checks = _health(inputs).filter(pl.col("kind") == "health_check")
    return _per_component(checks, 100.0 * (pl.col("status") == "degraded").sum() / pl.len())


def _errors_per_hour(inputs: MetricInputs) -> pl.DataFrame:
    failed = (pl.col("kind") == "error") | pl.col("status").is_in(health.FAILED_STATUSES)
    per_hour = HEALTH_WINDOW / timedelta(hours=1)
    return _per_component(_health(inputs), failed.sum() / per_hour)


def _response_time(stat: str) -> Callable[[MetricInputs], pl.DataFrame]:
    def compute(inputs: MetricInputs) -> pl.DataFrame:
        rt = pl.col("response_time_ms")
        measured = _health(inputs).filter((pl.col("kind") == "health_check") & rt.is_not_null())
        value = rt.quantile(0.95, "linear") if stat == "p95" else rt.mean()
        return _per_component(measured, value)

    return compute


def _migration_failures(inputs: MetricInputs) -> pl.DataFrame:
    window = _within(inputs.migrations, "started_at", inputs.now, MIGRATION_WINDOW)
    clean, _bad, _counts = releases.validate_releases(window)
    failed = clean.filter(pl.col("status") != releases.SUCCESS).height
    return pl.DataFrame({"component": [MIGRATION_COMPONENT], "value": [float(failed)]})


def _anomaly_confidence(inputs: MetricInputs) -> pl.DataFrame:
    rows = _within(inputs.anomalies, "checked_at", inputs.now, ANOMALY_WINDOW)
    confidence = pl.col("confidence").cast(pl.Float64, strict=False)
    usable = rows.filter(
        pl.col("component").is_not_null() & confidence.is_not_null() & confidence.is_finite()
    )
    return usable.group_by("component").agg(confidence.max().alias("value"))


def _failure_probability(inputs: MetricInputs) -> pl.DataFrame:
    rows = _within(inputs.predictions, "predicted_at", inputs.now, PREDICTION_STALENESS)
    latest = rows.filter(pl.col("predicted_at") == pl.col("predicted_at").max().over("component", "metric"))
    return latest.group_by("component").agg(pl.col("probability").max().cast(pl.Float64).alias("value"))


def _custom(inputs: MetricInputs, names: list[str]) -> pl.DataFrame:
    if not names:
        return pl.DataFrame(schema=VALUES_SCHEMA)
    window = _within(inputs.samples, "sampled_at", inputs.now, SAMPLE_STALENESS)
    clean, _bad, _counts = metrics.validate_samples(
        window.filter(pl.col("metric_name").is_in(names)),
        keep_non_finite=True,  # Prometheus semantics
    )
    return (
        clean.sort("sampled_at", "id")
        .group_by("metric_name", pl.col("source").alias("component"))
        .agg(pl.col("value").last().cast(pl.Float64))
        .select(list(VALUES_SCHEMA))
    )


_DEFS = [
    MetricDef(
        "uptime_percentage",
        Source.HEALTH,
        HEALTH_WINDOW,
        "%",
        "100 x up checks / checks over the last hour",
        _uptime,
    ),
    MetricDef(
        "degraded_percentage",
        Source.HEALTH,
        HEALTH_WINDOW,
        "%",
        "100 x degraded checks / checks over the last hour",
        _degraded,
    ),
    MetricDef(
        "errors_per_hour",
        Source.HEALTH,
        HEALTH_WINDOW,
        "errors/h",
        "error events + failed checks in the last hour",
        _errors_per_hour,
    ),
    MetricDef(
        "response_time_p95_ms",
        Source.HEALTH,
        HEALTH_WINDOW,
        "ms",
        "p95 (linear interpolation) of measured response times in the last hour",
        _response_time("p95"),
    ),
    MetricDef(
        "response_time_avg_ms",
        Source.HEALTH,
        HEALTH_WINDOW,
        "ms",
        "mean of measured response times in the last hour",
        _response_time("avg"),
    ),
    MetricDef(
        "migration_failures",
        Source.MIGRATIONS,
        MIGRATION_WINDOW,
        "count",
        f"failed migrations started in the last hour (component '{MIGRATION_COMPONENT}')",
        _migration_failures,
    ),
    MetricDef(
        "anomaly_confidence",
        Source.ANOMALIES,
        ANOMALY_WINDOW,
        "0-1",
        "max confidence of AI-ops anomalies in the last hour",
        _anomaly_confidence,
    ),
    MetricDef(
        "failure_probability",
        Source.PREDICTIONS,
        PREDICTION_STALENESS,
        "0-1",
        "max probability of the latest failure predictions (at most 12 h old)",
        _failure_probability,
    ),
]
BUILTIN: Mapping[str, MetricDef] = {d.name: d for d in _DEFS}


def custom_names(names: Iterable[str]) -> list[str]:
    """Names that are not built in: custom metrics looked up in ``metric_samples`` (sorted, unique)."""
    return sorted({n for n in names if n not in BUILTIN})


def sources_for(names: Iterable[str]) -> set[Source]:
    """The inputs needed to compute ``names``."""
    return {BUILTIN[n].source if n in BUILTIN else Source.SAMPLES for n in names}


def window_for(source: Source) -> timedelta:
    """How far back before ``now`` the database edge must read ``source``."""
    return {
        Source.HEALTH: HEALTH_WINDOW,
        Source.MIGRATIONS: MIGRATION_WINDOW,
        Source.SAMPLES: SAMPLE_STALENESS,
        Source.ANOMALIES: ANOMALY_WINDOW,
        Source.PREDICTIONS: PREDICTION_STALENESS,
    }[source]


def metric_values(names: Iterable[str], inputs: MetricInputs) -> pl.DataFrame:
    """``(metric_name, component, value)`` for every requested metric and component that has data now.

    A component without data for a metric has no row (the rule's no-data policy decides what that means).
    A prediction source that is None (the AI-ops tables do not exist yet) gives no rows.
    """
    wanted = sorted(set(names))
    parts = []
    for name in (n for n in wanted if n in BUILTIN):
        definition = BUILTIN[name]
        if definition.source is Source.PREDICTIONS and inputs.predictions is None:
            continue
        values = definition.compute(inputs)
        parts.append(
            values.select(pl.lit(name).alias("metric_name"), "component", pl.col("value").cast(pl.Float64))
        )
    parts.append(_custom(inputs, custom_names(wanted)))
    return pl.concat([p.cast(VALUES_SCHEMA) for p in parts]).sort("metric_name", "component")  # type: ignore[arg-type]


def rule_values(rules: pl.DataFrame, values: pl.DataFrame) -> pl.DataFrame:
    """One ``(rule_id, component, value)`` row per rule and component with data (the machine's input)."""
    return (
        rules.select(pl.col("rule_id").cast(pl.Int64), pl.col("metric_name").cast(pl.String))
        .join(values, on="metric_name", how="inner")
        .select("rule_id", "component", "value")
        .sort("rule_id", "component")
    )
