"""Release statistics: migrations and deployments per time bucket (the seed's release metrics)."""

from __future__ import annotations

import polars as pl

MIGRATION_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "started_at": pl.Datetime("us", "UTC"),
    "duration_ms": pl.Float64(),
    "status": pl.String(),
    "rolled_back": pl.Boolean(),
}
DEPLOYMENT_SCHEMA: dict[str, pl.DataType] = {**MIGRATION_SCHEMA, "source": pl.String()}

SUCCESS = "success"
RELEASE_STATUSES = (SUCCESS, "failed", "rolled_back")


def validate_releases(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Split into (clean, quarantined-with-reason, counts): unknown statuses and negative durations."""
    reason = (
        pl.when(pl.col("status").is_null() | ~pl.col("status").is_in(RELEASE_STATUSES))
        .then(pl.lit("unknown status"))
        .when(pl.col("duration_ms") < 0)
        .then(pl.lit("negative duration"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    labelled = raw.with_columns(reason.alias("reason"))
    bad = labelled.filter(pl.col("reason").is_not_null())
    counts = dict(bad.group_by("reason").len().iter_rows())
    return labelled.filter(pl.col("reason").is_null()).drop("reason"), bad, counts


def _counts(frame: pl.DataFrame, every: str, prefix: str) -> pl.DataFrame:
    failed = pl.col("status") != SUCCESS
    rolled_back = pl.col("rolled_back") | (pl.col("status") == "rolled_back")
    return (
        frame.with_columns(pl.col("started_at").dt.truncate(every).alias("bucket_start"))
        .group_by("bucket_start")
        .agg(
            pl.len().cast(pl.Int64).alias(f"{prefix}_total"),
            failed.sum().cast(pl.Int64).alias(f"{prefix}_failed"),
            rolled_back.sum().cast(pl.Int64).alias(f"{prefix}_rollbacks"),
            pl.col("duration_ms").mean().alias(f"{prefix}_duration_avg_ms"),
            pl.col("duration_ms").max().alias(f"{prefix}_duration_max_ms"),
        )
    )


def release_stats(migrations: pl.DataFrame, deployments: pl.DataFrame, every: str = "1d") -> pl.DataFrame:
    """Totals, failures, success rates (%, null when nothing ran), rollbacks and migration durations."""
    m = _counts(migrations, every, "migrations")
    d = _counts(deployments, every, "deployments")
    joined = m.join(d, on="bucket_start", how="full", coalesce=True)
    zero = [
        "migrations_total",
        "migrations_failed",
        "migrations_rollbacks",
        "deployments_total",
        "deployments_failed",
        "deployments_rollbacks",
    ]
    joined = joined.with_columns(pl.col(zero).fill_null(0))

    def rate(prefix: str) -> pl.Expr:
        total = pl.col(f"{prefix}_total")
        return pl.when(total > 0).then(100.0 * (total - pl.col(f"{prefix}_failed")) / total)

    return joined.select(
        "bucket_start",
        "migrations_total",
        "migrations_failed",
        rate("migrations").alias("migrations_success_rate"),
        pl.col("migrations_rollbacks").alias("rollbacks_total"),
        pl.col("migrations_duration_avg_ms").alias("migration_duration_avg_ms"),
        pl.col("migrations_duration_max_ms").alias("migration_duration_max_ms"),
        "deployments_total",
        "deployments_failed",
        rate("deployments").alias("deployment_success_rate"),
        pl.col("deployments_rollbacks").alias("deployment_rollbacks"),
    ).sort("bucket_start")
