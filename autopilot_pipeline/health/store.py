"""Window reads of the monitored application's ``automation`` tables, in bulk (binary COPY → Arrow → polars).

Each read selects one time window on an indexed timestamp, so its cost follows the window, not history.
Findings written back by the AI-ops assets (``source = 'ai-ops'``) are not input and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.health.releases import DEPLOYMENT_SCHEMA, MIGRATION_SCHEMA
from autopilot_pipeline.health.samples import SAMPLE_SCHEMA
from autopilot_pipeline.health.tables import AI_OPS_SOURCE, HEALTH_SCHEMA
from autopilot_pipeline.postgres.io import copy_frame, epoch_us, read_bulk, read_frame, serialize_writes


def read_health_window(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    query = (
        "SELECT id, checked_at, source, kind, status, response_time_ms, inserted_at FROM automation.health_log "
        "WHERE checked_at >= %s AND checked_at < %s AND source <> %s"
    )
    return read_bulk(conn, query, (start, end, AI_OPS_SOURCE), HEALTH_SCHEMA)


def read_samples_window(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    query = (
        "SELECT id, sampled_at, source, metric_name, value, inserted_at FROM automation.metric_samples "
        "WHERE sampled_at >= %s AND sampled_at < %s"
    )
    return read_bulk(conn, query, (start, end), SAMPLE_SCHEMA)


def read_migrations_window(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    query = (
        "SELECT id, started_at, duration_ms, status, rolled_back FROM automation.migration_log "
        "WHERE started_at >= %s AND started_at < %s"
    )
    return read_bulk(conn, query, (start, end), MIGRATION_SCHEMA)


def read_deployments_window(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    query = (
        "SELECT id, started_at, duration_ms, status, rolled_back, source FROM automation.deployment_log "
        "WHERE started_at >= %s AND started_at < %s"
    )
    return read_bulk(conn, query, (start, end), DEPLOYMENT_SCHEMA)


def read_table_window(
    conn: psycopg.Connection,
    table: str,
    schema: dict[str, pl.DataType],
    start: datetime,
    end: datetime,
    target: str = "default",
) -> pl.DataFrame:
    """Rows of ``target`` in an ``analytics`` table whose ``bucket_start`` lies in ``[start, end)``.

    Derived tables hold one row per component and bucket, so this small read stays on the caller's
    session (``read_frame``) rather than paying for a second connection.
    """
    schema_name, table_name = table.split(".", 1)
    columns = [
        epoch_us(name) if isinstance(dtype, pl.Datetime) else sql.Identifier(name)
        for name, dtype in schema.items()
    ]
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE target = %s AND bucket_start >= %s AND bucket_start < %s"
    ).format(cols=sql.SQL(", ").join(columns), table=sql.Identifier(schema_name, table_name))
    timestamps = [name for name, dtype in schema.items() if isinstance(dtype, pl.Datetime)]
    return read_frame(conn, query, (target, start, end), schema, timestamps)


def write_quarantine(
    conn: psycopg.Connection,
    source_table: str,
    time_column: str,
    bad: pl.DataFrame,
    start: datetime,
    end: datetime,
    target: str = "default",
) -> None:
    """Replace the window's quarantined rows of ``target``'s ``source_table`` (one transaction with the
    caller's; a concurrent run of the same source waits, see :func:`serialize_writes`)."""
    serialize_writes(conn, f"analytics.quarantine:{target}:{source_table}")
    conn.execute(
        "DELETE FROM analytics.quarantine WHERE target = %s AND source_table = %s "
        "AND partition_start >= %s AND partition_start < %s",
        (target, source_table, start, end),
    )
    if bad.height == 0:
        return
    payload_columns = [c for c in bad.columns if c != "reason"]
    rows = bad.select(
        pl.lit(target).alias("target"),
        pl.lit(source_table).alias("source_table"),
        pl.col("id").alias("source_id"),
        pl.col(time_column).alias("event_at"),
        pl.col(time_column).dt.truncate("1h").clip(start, None).alias("partition_start"),
        "reason",
        pl.struct(payload_columns).struct.json_encode().alias("payload"),
    )
    copy_frame(conn, "analytics.quarantine", rows)


# ------------------------------------------------------------------ new rows (the late-data sensor's input)

MAX_IDS_PER_TICK = 2_000_000  # bounds one sensor evaluation; the rest is picked up next tick


@dataclass(frozen=True)
class NewRows:
    hours: list[datetime]  # distinct hour buckets of the new rows, ascending
    rows: int
    last_id: int


def new_health_rows(conn: psycopg.Connection, after_id: int) -> NewRows:
    """Hours touched by rows with ``id > after_id`` (an index range scan on the primary key)."""
    upper = after_id + MAX_IDS_PER_TICK
    result = conn.execute(
        "SELECT date_trunc('hour', checked_at) AS hour, count(*), max(id) FROM automation.health_log "
        "WHERE id > %s AND id <= %s AND source <> %s GROUP BY 1 ORDER BY 1",
        (after_id, upper, AI_OPS_SOURCE),
    ).fetchall()
    max_id = conn.execute(
        "SELECT coalesce(max(id), %s) FROM automation.health_log WHERE id > %s AND id <= %s",
        (after_id, after_id, upper),
    ).fetchone()
    return NewRows(
        hours=[row[0] for row in result],
        rows=sum(row[1] for row in result),
        last_id=int(max_id[0]) if max_id else after_id,
    )


def latest_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM automation.health_log").fetchone()
    return int(row[0]) if row else 0


# ------------------------------------------------------------------ summaries for people (CLI)

COMPONENT_SUMMARY = """
WITH up AS (
    SELECT component, sum(up_checks)::float8 * 100 / nullif(sum(checks), 0) AS uptime_pct, sum(checks) AS checks
    FROM analytics.uptime_hourly WHERE target = %(target)s GROUP BY component
), err AS (
    SELECT component, sum(errors) AS errors, sum(errors)::float8 / nullif(sum(events), 0) AS error_ratio,
           sum(errors)::float8 / nullif(count(*), 0) AS errors_per_hour
    FROM analytics.error_rates_hourly WHERE target = %(target)s GROUP BY component
), rt AS (
    SELECT component, max(p95_ms) AS worst_p95_ms, percentile_cont(0.5) WITHIN GROUP (ORDER BY p95_ms) AS median_p95_ms
    FROM analytics.response_times_hourly WHERE target = %(target)s GROUP BY component
), score AS (
    SELECT component, avg(health_score) AS health_score, min(health_score) AS worst_health_score
    FROM analytics.health_score_hourly WHERE target = %(target)s GROUP BY component
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


def component_summary(conn: psycopg.Connection, target: str = "default") -> pl.DataFrame:
    """Per component of ``target`` over all materialized hours: uptime, errors, p95 and health score."""
    return read_frame(conn, COMPONENT_SUMMARY, {"target": target}, COMPONENT_SCHEMA)


def release_summary(conn: psycopg.Connection, target: str = "default") -> dict[str, float | int | None]:
    row = conn.execute(
        "SELECT coalesce(sum(migrations_total), 0), coalesce(sum(migrations_failed), 0), "
        "coalesce(sum(rollbacks_total), 0), coalesce(sum(deployments_total), 0), "
        "coalesce(sum(deployments_failed), 0) FROM analytics.release_stats_daily WHERE target = %s",
        (target,),
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
        "(extract(epoch FROM max(checked_at)) * 1000000)::bigint FROM automation.health_log WHERE source <> %s AND checked_at <= now()",
        (AI_OPS_SOURCE,),
        {"first": pl.Int64(), "last": pl.Int64()},
        ("first", "last"),
    )
    return frame.row(0) if frame.height else (None, None)
