"""Read-only summaries of the analytics tables for people (CLI output)."""

from __future__ import annotations

import polars as pl
import psycopg

from autopilot_pipeline.postgres.io import read_frame

COMPONENT_SUMMARY = """
WITH up AS (
    SELECT component, sum(up_checks)::float8 * 100 / nullif(sum(checks), 0) AS uptime_pct, sum(checks) AS checks
    FROM analytics.uptime_hourly GROUP BY component
), err AS (
    SELECT component, sum(errors) AS errors, sum(errors)::float8 / nullif(sum(events), 0) AS error_ratio,
           sum(errors)::float8 / nullif(count(*), 0) AS errors_per_hour
    FROM analytics.error_rates_hourly GROUP BY component
), rt AS (
    SELECT component, max(p95_ms) AS worst_p95_ms, percentile_cont(0.5) WITHIN GROUP (ORDER BY p95_ms) AS median_p95_ms
    FROM analytics.response_times_hourly GROUP BY component
), score AS (
    SELECT component, avg(health_score) AS health_score, min(health_score) AS worst_health_score
    FROM analytics.health_score_hourly GROUP BY component
)
SELECT up.component, up.checks, up.uptime_pct, err.errors, err.error_ratio, err.errors_per_hour,
       rt.median_p95_ms, rt.worst_p95_ms, score.health_score, score.worst_health_score
FROM up LEFT JOIN err USING (component) LEFT JOIN rt USING (component) LEFT JOIN score USING (component)
ORDER BY up.component
"""

COMPONENT_SCHEMA: dict[str, pl.DataType] = {
    "component": pl.String(),
    "checks": pl.Int64(),
    "uptime_pct": pl.Float64(),
    "errors": pl.Int64(),
    "error_ratio": pl.Float64(),
    "errors_per_hour": pl.Float64(),
    "median_p95_ms": pl.Float64(),
    "worst_p95_ms": pl.Float64(),
    "health_score": pl.Float64(),
    "worst_health_score": pl.Float64(),
}


def component_summary(conn: psycopg.Connection) -> pl.DataFrame:
    """Per component over all materialized hours: uptime, errors, p95 and health score."""
    return read_frame(conn, COMPONENT_SUMMARY, None, COMPONENT_SCHEMA)


def release_summary(conn: psycopg.Connection) -> dict[str, float | int | None]:
    row = conn.execute(
        "SELECT coalesce(sum(migrations_total), 0), coalesce(sum(migrations_failed), 0), "
        "coalesce(sum(rollbacks_total), 0), coalesce(sum(deployments_total), 0), "
        "coalesce(sum(deployments_failed), 0) FROM analytics.release_stats_daily"
    ).fetchone()
    assert row is not None
    migrations, failed, rollbacks, deployments, deploys_failed = (int(v) for v in row)
    return {
        "migrations": migrations,
        "migration_success_pct": 100.0 * (migrations - failed) / migrations if migrations else None,
        "rollbacks": rollbacks,
        "deployments": deployments,
        "deployment_success_pct": 100.0 * (deployments - deploys_failed) / deployments
        if deployments
        else None,
    }


def data_span(conn: psycopg.Connection) -> tuple[pl.Datetime | None, pl.Datetime | None]:
    """First and last ``checked_at`` of the application's health checks (rows dated in the future excluded)."""
    frame = read_frame(
        conn,
        "SELECT (extract(epoch FROM min(checked_at)) * 1000000)::bigint, "
        "(extract(epoch FROM max(checked_at)) * 1000000)::bigint FROM automation.health_log WHERE source <> 'ai-ops' AND checked_at <= now()",
        None,
        {"first": pl.Int64(), "last": pl.Int64()},
        ("first", "last"),
    )
    return frame.row(0) if frame.height else (None, None)


def firing_alerts(conn: psycopg.Connection) -> list[tuple[str, str, str, float | None]]:
    """(severity, rule, component, value) of alerts firing now, most severe first."""
    return conn.execute(
        "SELECT severity, rule_name, component, value FROM automation.active_alerts "
        "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, rule_name, component"
    ).fetchall()


def top_recommendations(conn: psycopg.Connection, limit: int = 5) -> list[tuple[str, str, str, float | None]]:
    """(priority, type, description, estimated improvement %) of the best open recommendations."""
    return conn.execute(
        "SELECT priority, recommendation_type, description, estimated_improvement_pct "
        "FROM automation.open_recommendations LIMIT %s",
        (limit,),
    ).fetchall()
