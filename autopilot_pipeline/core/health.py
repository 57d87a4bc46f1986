"""Health analytics: validation of raw checks and the hourly/daily health tables.

Conventions (documented in README "Health tables"):
- a *health check* is a ``health_log`` row with ``kind = 'health_check'``; it is *up* when its status is
  ``healthy`` or ``degraded``;
- an *error* is an ``error`` event or a failed check (status ``down`` or ``error``);
- response-time percentiles use checks with a measured response time.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

CHECK_STATUSES = ("healthy", "degraded", "down", "error")
UP_STATUSES = ("healthy", "degraded")
FAILED_STATUSES = ("down", "error")
HEALTH_KINDS = ("health_check", "error")

FUTURE_TOLERANCE = timedelta(minutes=5)
LATE_AFTER = timedelta(hours=1)

HEALTH_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "checked_at": pl.Datetime("us", "UTC"),
    "source": pl.String(),
    "kind": pl.String(),
    "status": pl.String(),
    "response_time_ms": pl.Float64(),
    "inserted_at": pl.Datetime("us", "UTC"),
}

_DEDUP_KEY = ["source", "kind", "checked_at", "status", "response_time_ms"]


def quarantine_reasons() -> pl.Expr:
    """Why a row cannot be used, or null when it is valid (first reason wins)."""
    rt = pl.col("response_time_ms")
    is_check = pl.col("kind") == "health_check"
    return (
        pl.when(pl.col("source").is_null() | (pl.col("source") == ""))
        .then(pl.lit("missing component"))
        .when(pl.col("status").is_null() | ~pl.col("status").is_in(CHECK_STATUSES))
        .then(pl.lit("unknown status"))
        .when(rt < 0)
        .then(pl.lit("negative response time"))
        .when(rt.is_nan() | rt.is_infinite())
        .then(pl.lit("non-finite response time"))
        .when(is_check & rt.is_null() & pl.col("status").is_in(UP_STATUSES))
        .then(pl.lit("null response time"))
        .when(pl.col("checked_at") > pl.col("inserted_at") + FUTURE_TOLERANCE)
        .then(pl.lit("timestamp in the future"))
        .when(pl.struct(_DEDUP_KEY).is_first_distinct().not_())
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def validate_health(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Split raw ``health_log`` rows into (clean, quarantined-with-reason, counts).

    Only health checks and error events are analysed; other kinds (e.g. ``ai-ops`` anomalies) are ignored.
    ``counts`` holds one entry per reason plus ``late`` (valid rows inserted more than an hour after they
    were checked: kept, but reported). A timestamp is "in the future" when it is later than the moment the
    row was written (a writer with a wrong clock), so the verdict does not depend on when we look.
    """
    rows = raw.filter(pl.col("kind").is_in(HEALTH_KINDS)).sort("id")
    labelled = rows.with_columns(quarantine_reasons().alias("reason"))
    clean = labelled.filter(pl.col("reason").is_null()).drop("reason")
    bad = labelled.filter(pl.col("reason").is_not_null())
    counts = {reason: 0 for reason in QUARANTINE_REASONS}
    counts.update(dict(bad.group_by("reason").len().iter_rows()))
    counts["late"] = clean.filter((pl.col("inserted_at") - pl.col("checked_at")) > LATE_AFTER).height
    return clean, bad, counts


QUARANTINE_REASONS = (
    "missing component",
    "unknown status",
    "negative response time",
    "non-finite response time",
    "null response time",
    "timestamp in the future",
    "duplicate",
)


def _bucketed(frame: pl.DataFrame, every: str) -> pl.DataFrame:
    return frame.with_columns(pl.col("checked_at").dt.truncate(every).alias("bucket_start"))


def uptime(clean: pl.DataFrame, every: str = "1h") -> pl.DataFrame:
    """Checks, up checks and uptime % per (bucket, component)."""
    checks = _bucketed(clean.filter(pl.col("kind") == "health_check"), every)
    return (
        checks.group_by("bucket_start", pl.col("source").alias("component"))
        .agg(
            pl.len().cast(pl.Int64).alias("checks"),
            pl.col("status").is_in(UP_STATUSES).sum().cast(pl.Int64).alias("up_checks"),
        )
        .with_columns((100.0 * pl.col("up_checks") / pl.col("checks")).alias("uptime_pct"))
        .sort("bucket_start", "component")
    )


def rollup_uptime(hourly: pl.DataFrame, every: str = "1d") -> pl.DataFrame:
    """Exact coarser uptime from finer buckets (sums of counts, not a mean of percentages)."""
    return (
        hourly.with_columns(pl.col("bucket_start").dt.truncate(every))
        .group_by("bucket_start", "component")
        .agg(pl.col("checks").sum(), pl.col("up_checks").sum())
        .with_columns((100.0 * pl.col("up_checks") / pl.col("checks")).alias("uptime_pct"))
        .sort("bucket_start", "component")
    )


def error_rates(clean: pl.DataFrame, every: str = "1h") -> pl.DataFrame:
    """Events, errors, error ratio and errors per hour per (bucket, component)."""
    bucket_hours = _every_hours(every)
    failed = (pl.col("kind") == "error") | pl.col("status").is_in(FAILED_STATUSES)
    return (
        _bucketed(clean, every)
        .group_by("bucket_start", pl.col("source").alias("component"))
        .agg(pl.len().cast(pl.Int64).alias("events"), failed.sum().cast(pl.Int64).alias("errors"))
        .with_columns(
            (pl.col("errors") / pl.col("events")).alias("error_ratio"),
            (pl.col("errors") / bucket_hours).alias("errors_per_hour"),
        )
        .sort("bucket_start", "component")
    )


def response_times(clean: pl.DataFrame, every: str = "1h") -> pl.DataFrame:
    """Average, p50, p95, p99 and max response time per (bucket, component).

    Percentiles use linear interpolation, the same definition as Postgres ``percentile_cont``.
    """
    rt = pl.col("response_time_ms")
    measured = clean.filter((pl.col("kind") == "health_check") & rt.is_not_null())
    return (
        _bucketed(measured, every)
        .group_by("bucket_start", pl.col("source").alias("component"))
        .agg(
            pl.len().cast(pl.Int64).alias("samples"),
            rt.mean().alias("avg_ms"),
            rt.quantile(0.50, "linear").alias("p50_ms"),
            rt.quantile(0.95, "linear").alias("p95_ms"),
            rt.quantile(0.99, "linear").alias("p99_ms"),
            rt.max().alias("max_ms"),
        )
        .sort("bucket_start", "component")
    )


def _every_hours(every: str) -> float:
    units = {"m": 1 / 60, "h": 1.0, "d": 24.0}
    return float(every[:-1]) * units[every[-1]]


# Health score weights and ranges (see README "Health score").
UPTIME_WEIGHT, ERROR_WEIGHT, LATENCY_WEIGHT = 0.5, 0.3, 0.2
UPTIME_FLOOR_PCT = 90.0  # uptime at or below this scores 0 (the seed's critical uptime)
ERROR_CEILING_RATIO = 0.10  # error ratio at or above this scores 0
LATENCY_GOOD_MS, LATENCY_BAD_MS = 1000.0, 10000.0  # p95 <= good scores 1, >= bad (critical rule) scores 0


def health_score(uptime_frame: pl.DataFrame, errors: pl.DataFrame, latency: pl.DataFrame) -> pl.DataFrame:
    """Composite 0–100 score per (bucket, component):

    ``100 * (0.5 * U + 0.3 * E + 0.2 * L)`` with U = clip((uptime% − 90) / 10), E = clip(1 − ratio / 0.10),
    L = clip(1 − (p95 − 1000) / 9000), each clipped to [0, 1]. A missing part (no checks with a measured
    latency, say) scores as healthy, so a score never drops for lack of data alone.
    """
    key = ["bucket_start", "component"]
    joined = (
        uptime_frame.select(*key, "uptime_pct")
        .join(errors.select(*key, "error_ratio"), on=key, how="full", coalesce=True)
        .join(latency.select(*key, "p95_ms"), on=key, how="full", coalesce=True)
    )

    def clip01(expr: pl.Expr) -> pl.Expr:
        return expr.clip(0.0, 1.0).fill_null(1.0)

    scored = joined.with_columns(
        clip01((pl.col("uptime_pct") - UPTIME_FLOOR_PCT) / (100.0 - UPTIME_FLOOR_PCT)).alias("uptime_score"),
        clip01(1.0 - pl.col("error_ratio") / ERROR_CEILING_RATIO).alias("error_score"),
        clip01(1.0 - (pl.col("p95_ms") - LATENCY_GOOD_MS) / (LATENCY_BAD_MS - LATENCY_GOOD_MS)).alias(
            "latency_score"
        ),
    )
    return scored.with_columns(
        (
            100.0
            * (
                UPTIME_WEIGHT * pl.col("uptime_score")
                + ERROR_WEIGHT * pl.col("error_score")
                + LATENCY_WEIGHT * pl.col("latency_score")
            )
        ).alias("health_score")
    ).sort(key)
