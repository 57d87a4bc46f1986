"""Window reads of the monitored application's ``automation`` tables, in bulk (binary COPY → Arrow → polars).

Each read selects one time window on an indexed timestamp, so its cost follows the window, not history.
Findings written back by the AI-ops assets (``source = 'ai-ops'``) are not input and are left out.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.health.releases import DEPLOYMENT_SCHEMA, MIGRATION_SCHEMA
from autopilot_pipeline.health.samples import SAMPLE_SCHEMA
from autopilot_pipeline.health.tables import HEALTH_SCHEMA
from autopilot_pipeline.postgres.io import copy_frame, epoch_us, read_bulk, read_frame

AI_OPS_SOURCE = "ai-ops"


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
    conn: psycopg.Connection, table: str, schema: dict[str, pl.DataType], start: datetime, end: datetime
) -> pl.DataFrame:
    """Rows of an ``analytics`` table whose ``bucket_start`` lies in ``[start, end)``.

    Derived tables hold one row per component and bucket, so this small read stays on the caller's
    session (``read_frame``) rather than paying for a second connection.
    """
    schema_name, table_name = table.split(".", 1)
    columns = [
        epoch_us(name) if isinstance(dtype, pl.Datetime) else sql.Identifier(name)
        for name, dtype in schema.items()
    ]
    query = sql.SQL("SELECT {cols} FROM {table} WHERE bucket_start >= %s AND bucket_start < %s").format(
        cols=sql.SQL(", ").join(columns), table=sql.Identifier(schema_name, table_name)
    )
    timestamps = [name for name, dtype in schema.items() if isinstance(dtype, pl.Datetime)]
    return read_frame(conn, query, (start, end), schema, timestamps)


def write_quarantine(
    conn: psycopg.Connection,
    source_table: str,
    time_column: str,
    bad: pl.DataFrame,
    start: datetime,
    end: datetime,
) -> None:
    """Replace the window's quarantined rows of ``source_table`` (one transaction with the caller's)."""
    conn.execute(
        "DELETE FROM analytics.quarantine WHERE source_table = %s AND partition_start >= %s AND partition_start < %s",
        (source_table, start, end),
    )
    if bad.height == 0:
        return
    payload_columns = [c for c in bad.columns if c != "reason"]
    rows = bad.select(
        pl.lit(source_table).alias("source_table"),
        pl.col("id").alias("source_id"),
        pl.col(time_column).alias("event_at"),
        pl.col(time_column).dt.truncate("1h").clip(start, None).alias("partition_start"),
        "reason",
        pl.struct(payload_columns).struct.json_encode().alias("payload"),
    )
    copy_frame(conn, "analytics.quarantine", rows)
