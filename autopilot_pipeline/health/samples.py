"""Custom metric samples (``memory_usage_pct`` and friends): validation and hourly aggregates."""

from __future__ import annotations

import polars as pl

from autopilot_pipeline.health.tables import FUTURE_TOLERANCE, normalise_components

SAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "sampled_at": pl.Datetime("us", "UTC"),
    "source": pl.String(),
    "metric_name": pl.String(),
    "value": pl.Float64(),
    "inserted_at": pl.Datetime("us", "UTC"),
}


def validate_samples(
    raw: pl.DataFrame, keep_non_finite: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Split samples into (clean, quarantined-with-reason, counts per reason); component names trimmed.

    ``keep_non_finite`` keeps NaN and +-Inf values: the alert engine compares them as Prometheus does
    (a gauge at +Inf is above every threshold), while the hourly averages must not see them.
    """
    raw = normalise_components(raw)
    value = pl.col("value")
    missing = value.is_null() if keep_non_finite else value.is_null() | value.is_nan() | value.is_infinite()
    reason = (
        pl.when(pl.col("metric_name").is_null() | (pl.col("metric_name") == ""))
        .then(pl.lit("missing metric name"))
        .when(missing)
        .then(pl.lit("missing or non-finite value"))
        .when(pl.col("sampled_at") > pl.col("inserted_at") + FUTURE_TOLERANCE)
        .then(pl.lit("timestamp in the future"))
        .when(pl.struct("source", "metric_name", "sampled_at").is_first_distinct().not_())
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    labelled = raw.sort("id").with_columns(reason.alias("reason"))
    bad = labelled.filter(pl.col("reason").is_not_null())
    counts = dict(bad.group_by("reason").len().iter_rows())
    return labelled.filter(pl.col("reason").is_null()).drop("reason"), bad, counts


def hourly_samples(clean: pl.DataFrame, every: str = "1h") -> pl.DataFrame:
    """Samples, avg, max and last value per (bucket, component, metric)."""
    return (
        clean.sort("sampled_at")
        .with_columns(pl.col("sampled_at").dt.truncate(every).alias("bucket_start"))
        .group_by("bucket_start", pl.col("source").alias("component"), "metric_name")
        .agg(
            pl.len().cast(pl.Int64).alias("samples"),
            pl.col("value").mean().alias("avg_value"),
            pl.col("value").max().alias("max_value"),
            pl.col("value").last().alias("last_value"),
        )
        .sort("bucket_start", "component", "metric_name")
    )
