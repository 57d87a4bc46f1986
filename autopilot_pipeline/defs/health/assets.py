"""Health tables in ``analytics``: uptime, error rates, response times and the composite health score.

Each asset computes its window with the pure core and replaces exactly that window's rows in one
transaction, so re-running a partition is idempotent and a failed write leaves the old rows in place.
Partitions are target × time; every row carries its target.
"""

import dagster as dg
import polars as pl

from autopilot_pipeline.defs.meta import OWNERS, for_partitions, table_metadata
from autopilot_pipeline.defs.partitions import (
    SAME_TARGET_OVERLAPPING_TIME,
    covers_one_partition,
    daily_by_target,
    hourly_by_target,
    run_target,
)
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.health import samples as metrics
from autopilot_pipeline.health import tables as health
from autopilot_pipeline.health.store import read_table_window
from autopilot_pipeline.postgres.io import replace_window

GROUP = "health"
KINDS = {"postgres", "polars"}
TS = pl.Datetime("us", "UTC")


def write_window(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    table: str,
    frame: pl.DataFrame,
    **extra: object,
) -> dg.MaterializeResult:
    """Replace the run's window of ``table`` for the run's target with ``frame``; describe it for the UI."""
    window = context.partition_time_window
    target = run_target(context)
    with postgres.connect() as conn:
        replace_window(conn, table, "bucket_start", window.start, window.end, frame, where={"target": target})
    metadata = {**table_metadata(table, frame), "target": target, **extra}
    return dg.MaterializeResult(metadata=for_partitions(metadata, covers_one_partition(context)))


def _stat(frame: pl.DataFrame, expr: pl.Expr) -> float | None:
    if frame.height == 0:
        return None
    value = frame.select(expr).item()
    return None if value is None else round(float(value), 3)


def _asset(name: str, description: str, **kwargs: object):  # noqa: ANN202 - decorator factory
    return dg.asset(
        key=["analytics", name],
        group_name=GROUP,
        kinds=KINDS,
        owners=OWNERS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=description,
        **kwargs,  # type: ignore[arg-type]
    )


HEALTH_CHECKS = dg.AssetIn(key=["ingest", "health_checks"])


@_asset(
    "uptime_hourly",
    "Uptime % per component and hour: up checks (healthy or degraded) / all checks; the share of degraded "
    "checks beside it.",
    partitions_def=hourly_by_target,
    ins={"checks": HEALTH_CHECKS},
)
def uptime_hourly(context: dg.AssetExecutionContext, postgres: PostgresResource, checks: pl.DataFrame):
    frame = health.uptime(checks, "1h")
    return write_window(
        context,
        postgres,
        "analytics.uptime_hourly",
        frame,
        min_uptime_pct=_stat(frame, pl.col("uptime_pct").min()),
        mean_uptime_pct=_stat(frame, (100.0 * pl.col("up_checks").sum() / pl.col("checks").sum())),
        max_degraded_pct=_stat(frame, 100.0 * pl.col("degraded_ratio").max()),
    )


@_asset(
    "error_rates_hourly",
    "Errors (error events + failed checks), error ratio and errors per hour, per component and hour.",
    partitions_def=hourly_by_target,
    ins={"checks": HEALTH_CHECKS},
)
def error_rates_hourly(context: dg.AssetExecutionContext, postgres: PostgresResource, checks: pl.DataFrame):
    frame = health.error_rates(checks, "1h")
    return write_window(
        context,
        postgres,
        "analytics.error_rates_hourly",
        frame,
        errors=int(frame["errors"].sum()) if frame.height else 0,
        max_error_ratio=_stat(frame, pl.col("error_ratio").max()),
    )


@_asset(
    "response_times_hourly",
    "Response time avg, p50, p95, p99 and max per component and hour.",
    partitions_def=hourly_by_target,
    ins={"checks": HEALTH_CHECKS},
)
def response_times_hourly(
    context: dg.AssetExecutionContext, postgres: PostgresResource, checks: pl.DataFrame
):
    frame = health.response_times(checks, "1h")
    return write_window(
        context,
        postgres,
        "analytics.response_times_hourly",
        frame,
        worst_p95_ms=_stat(frame, pl.col("p95_ms").max()),
        median_p50_ms=_stat(frame, pl.col("p50_ms").median()),
    )


_KEY = {"bucket_start": TS, "component": pl.String()}


@_asset(
    "health_score_hourly",
    "Composite health score 0–100 per component and hour: 100 × (0.5·uptime + 0.3·errors + 0.2·latency) "
    "sub-scores (formula in README).",
    partitions_def=hourly_by_target,
    deps=[uptime_hourly, error_rates_hourly, response_times_hourly],
)
def health_score_hourly(context: dg.AssetExecutionContext, postgres: PostgresResource):
    window = context.partition_time_window
    target = run_target(context)
    with postgres.connect() as conn:
        parts = [
            read_table_window(conn, table, {**_KEY, column: pl.Float64()}, window.start, window.end, target)
            for table, column in (
                ("analytics.uptime_hourly", "uptime_pct"),
                ("analytics.error_rates_hourly", "error_ratio"),
                ("analytics.response_times_hourly", "p95_ms"),
            )
        ]
    frame = health.health_score(*parts)
    return write_window(
        context,
        postgres,
        "analytics.health_score_hourly",
        frame,
        min_health_score=_stat(frame, pl.col("health_score").min()),
        mean_health_score=_stat(frame, pl.col("health_score").mean()),
    )


@_asset(
    "uptime_daily",
    "Uptime % per component and day, summed exactly from the hourly counts.",
    partitions_def=daily_by_target,
    deps=[dg.AssetDep(uptime_hourly, partition_mapping=SAME_TARGET_OVERLAPPING_TIME)],
)
def uptime_daily(context: dg.AssetExecutionContext, postgres: PostgresResource):
    window = context.partition_time_window
    target = run_target(context)
    schema = {**_KEY, "checks": pl.Int64(), "up_checks": pl.Int64(), "degraded_checks": pl.Int64()}
    with postgres.connect() as conn:
        hourly_rows = read_table_window(
            conn, "analytics.uptime_hourly", schema, window.start, window.end, target
        )
    frame = health.rollup_uptime(hourly_rows, "1d")
    return write_window(
        context,
        postgres,
        "analytics.uptime_daily",
        frame,
        min_uptime_pct=_stat(frame, pl.col("uptime_pct").min()),
    )


@_asset(
    "metric_samples_hourly",
    "Custom metrics (memory_usage_pct, ...) per component and hour: avg, max, last.",
    partitions_def=hourly_by_target,
    ins={"samples": dg.AssetIn(key=["ingest", "metric_samples"])},
)
def metric_samples_hourly(
    context: dg.AssetExecutionContext, postgres: PostgresResource, samples: pl.DataFrame
):
    frame = metrics.hourly_samples(samples, "1h")
    return write_window(
        context,
        postgres,
        "analytics.metric_samples_hourly",
        frame,
        metrics=frame["metric_name"].n_unique() if frame.height else 0,
    )
