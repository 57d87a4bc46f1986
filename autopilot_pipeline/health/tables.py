"""Health analytics: validation of raw checks and the hourly/daily health tables.

Conventions (documented in README "Health tables"):
- a *health check* is a ``health_log`` row with ``kind = 'health_check'``; it is *up* when its status is
  ``healthy`` or ``degraded``;
- an *error* is an ``error`` event or a failed check (status ``down`` or ``error``);
- response-time percentiles use checks with a measured response time.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TypeVar

import polars as pl

CHECK_STATUSES = ("healthy", "degraded", "down", "error")
UP_STATUSES = ("healthy", "degraded")
FAILED_STATUSES = ("down", "error")
HEALTH_KINDS = ("health_check", "error")
# Kinds other writers put in health_log on purpose (AI-ops anomalies): not analysed, not a data problem.
OTHER_KINDS = ("anomaly",)
# A check slower than an hour is a unit mistake or garbage (1e308 once made an average of Infinity).
MAX_RESPONSE_MS = 3_600_000.0

FUTURE_TOLERANCE = timedelta(minutes=5)
LATE_AFTER = timedelta(hours=1)

# Labels are Categorical: a 10 M-row window then takes 4 bytes a label instead of a 16-byte string view.
#: ``health_log.source`` of the rows the AI-ops assets write back (anomalies): findings, not input.
AI_OPS_SOURCE = "ai-ops"

HEALTH_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "checked_at": pl.Datetime("us", "UTC"),
    "source": pl.Categorical(),
    "kind": pl.Categorical(),
    "status": pl.Categorical(),
    "response_time_ms": pl.Float64(),
    "inserted_at": pl.Datetime("us", "UTC"),
}

_DEDUP_KEY = ["source", "kind", "checked_at", "status", "response_time_ms"]


def _rules(duplicate: pl.Expr, max_response_ms: float = MAX_RESPONSE_MS) -> list[pl.Expr]:
    """One boolean per quarantine reason, in ``QUARANTINE_REASONS`` order (null counts as false)."""
    rt = pl.col("response_time_ms")
    return [
        pl.col("source").is_null() | (pl.col("source") == ""),
        ~pl.col("kind").is_in(HEALTH_KINDS),
        pl.col("status").is_null() | ~pl.col("status").is_in(CHECK_STATUSES),
        rt < 0,
        rt.is_nan() | rt.is_infinite(),
        rt > max_response_ms,
        (pl.col("kind") == "health_check") & rt.is_null() & pl.col("status").is_in(UP_STATUSES),
        pl.col("checked_at") > pl.col("inserted_at") + FUTURE_TOLERANCE,
        duplicate,
    ]


def quarantine_reasons(duplicate: pl.Expr, max_response_ms: float = MAX_RESPONSE_MS) -> pl.Expr:
    """Why a row cannot be used, or null when it is valid (first reason wins, in QUARANTINE_REASONS order)."""
    rules = _rules(duplicate, max_response_ms)
    chain = pl.when(rules[0]).then(pl.lit(QUARANTINE_REASONS[0], dtype=_REASON))
    for rule, reason in zip(rules[1:], QUARANTINE_REASONS[1:], strict=True):
        chain = chain.when(rule).then(pl.lit(reason, dtype=_REASON))
    return chain.otherwise(pl.lit(None, dtype=_REASON))


def normalise_components(raw: pl.DataFrame) -> pl.DataFrame:
    """Component names trimmed once, here, so ``'api '`` and ``api`` are one component everywhere after.

    Only the (few) distinct names are inspected; the column is rewritten only when one needs trimming.
    """
    source = raw["source"]
    names = source.unique().drop_nulls().cast(pl.String)
    if not (names != names.str.strip_chars()).any():
        return raw
    trimmed = pl.col("source").cast(pl.String).str.strip_chars()
    return raw.with_columns(trimmed.cast(source.dtype) if source.dtype == pl.Categorical else trimmed)


def validate_health(
    raw: pl.DataFrame, max_response_ms: float = MAX_RESPONSE_MS
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Split raw ``health_log`` rows into (clean, quarantined-with-reason, counts).

    Only health checks and error events are analysed; kinds other writers use on purpose (``OTHER_KINDS``,
    the AI-ops anomalies) are ignored, and any other kind is quarantined as "unknown kind" so it is counted
    and reported instead of silently dropped. Component names are trimmed first. Response times must be
    finite, >= 0 and <= ``max_response_ms`` (default one hour).
    ``counts`` holds one entry per reason plus ``late`` (valid rows inserted more than an hour after they
    were checked: kept, but reported). A timestamp is "in the future" when it is later than the moment the
    row was written (a writer with a wrong clock), so the verdict does not depend on when we look. Of exact
    duplicates the row written first (lowest id) is kept.

    Built for 10 M-row windows: only rows whose ``checked_at`` repeats can be duplicates, so only those are
    ordered and hashed; one OR of the rules finds the bad rows and reasons are labelled on those alone; a
    window with no bad row is handed on without a copy.
    """
    if not (math.isfinite(max_response_ms) and max_response_ms > 0):
        raise ValueError(f"max_response_ms must be a finite number > 0, got {max_response_ms!r}")
    ignored = raw["kind"].is_in(OTHER_KINDS).fill_null(False)
    rows = normalise_components(raw if not ignored.any() else raw.filter(~ignored))
    times = rows["checked_at"].sort()
    repeated = times.filter(times == times.shift(1)).unique()
    index = pl.int_range(pl.len(), dtype=pl.UInt32)
    candidates = (
        rows.select(index.alias("row"), "id", *_DEDUP_KEY)
        .filter(pl.col("checked_at").is_in(repeated.implode()) | pl.col("checked_at").is_null())
        .sort("id")
    )
    duplicates = candidates.filter(pl.struct(_DEDUP_KEY).is_first_distinct().not_())["row"]
    is_bad = (
        rows.lazy()
        .select(
            pl.any_horizontal(_rules(index.is_in(duplicates.implode()), max_response_ms)).fill_null(False)
        )
        .collect()
        .to_series()
    )
    clean = rows.lazy().filter(~is_bad).collect() if is_bad.any() else rows
    bad_rows = is_bad.arg_true()
    bad = (
        rows[bad_rows]
        .with_columns(
            quarantine_reasons(pl.lit(bad_rows.is_in(duplicates.implode())), max_response_ms)
            .cast(pl.String)
            .alias("reason")
        )
        .sort("id")
    )
    counts = {name: 0 for name in QUARANTINE_REASONS}
    counts.update(dict(bad.group_by("reason").len().iter_rows()))
    counts["late"] = clean.select(((pl.col("inserted_at") - pl.col("checked_at")) > LATE_AFTER).sum()).item()
    return clean, bad, counts


QUARANTINE_REASONS = (
    "missing component",
    "unknown kind",
    "unknown status",
    "negative response time",
    "non-finite response time",
    "response time above ceiling",
    "null response time",
    "timestamp in the future",
    "duplicate",
)
_REASON = pl.Enum(QUARANTINE_REASONS)

_KEY = "_bucket_component"
_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)
_COMPONENT_BITS = 32


def _every_us(every: str) -> int:
    units = {"m": 60, "h": 3600, "d": 86400}
    return int(every[:-1]) * units[every[-1]] * 1_000_000


def _grouped(frame: pl.LazyFrame, every: str, *aggs: pl.Expr, contiguous: bool = False) -> pl.LazyFrame:
    """Aggregate per (UTC bucket of ``every``, component), bucketing on integer epoch microseconds.

    ``contiguous`` first sorts rows by one Int64 key packing the bucket number and the component's
    categorical code, so each group is a contiguous slice: quantiles then read slices instead of gathering
    scattered rows (a third less time and a fraction of the memory at 10 M rows).
    """
    width = _every_us(every)
    bucket = pl.col("checked_at").dt.epoch("us") // width
    if contiguous:
        code = pl.col("source").cast(pl.Categorical).to_physical().cast(pl.Int64)  # no-op cast when read
        grouped = (
            frame.with_columns((bucket * 2**_COMPONENT_BITS + code).alias(_KEY))
            .sort(_KEY)
            .group_by(_KEY)
            .agg(pl.col("source").first(), *aggs)
            .with_columns((pl.col(_KEY) // 2**_COMPONENT_BITS).alias(_KEY))
        )
    else:
        grouped = frame.group_by(bucket.alias(_KEY), "source").agg(*aggs)
    return grouped.select(
        pl.from_epoch(pl.col(_KEY) * width, time_unit="us").dt.replace_time_zone("UTC").alias("bucket_start"),
        pl.col("source").cast(pl.String).alias("component"),
        pl.exclude(_KEY, "source"),
    ).sort("bucket_start", "component")


def _with_shares(counts: _Frame) -> _Frame:
    """Uptime % and degraded share from the counts, in the uptime tables' column order."""
    return counts.with_columns(
        (100.0 * pl.col("up_checks") / pl.col("checks")).alias("uptime_pct"),
        (pl.col("degraded_checks") / pl.col("checks")).alias("degraded_ratio"),
    ).select(
        "bucket_start", "component", "checks", "up_checks", "uptime_pct", "degraded_checks", "degraded_ratio"
    )


def uptime(clean: pl.DataFrame, every: str = "1h") -> pl.DataFrame:
    """Checks, up checks, uptime %, and degraded checks and their share per (bucket, component).

    A degraded check counts as up; its share is kept beside uptime as an early sign of trouble.
    """
    checks = clean.lazy().filter(pl.col("kind") == "health_check")
    counts = _grouped(
        checks,
        every,
        pl.len().cast(pl.Int64).alias("checks"),
        pl.col("status").is_in(UP_STATUSES).sum().cast(pl.Int64).alias("up_checks"),
        (pl.col("status") == "degraded").sum().cast(pl.Int64).alias("degraded_checks"),
    )
    return _with_shares(counts).collect()


def rollup_uptime(hourly: pl.DataFrame, every: str = "1d") -> pl.DataFrame:
    """Exact coarser uptime from finer buckets (sums of counts, not a mean of percentages). The degraded
    count is unknown (null) for a bucket where any finer bucket lacks it."""
    degraded = pl.col("degraded_checks")
    counts = (
        hourly.with_columns(pl.col("bucket_start").dt.truncate(every))
        .group_by("bucket_start", "component")
        .agg(
            pl.col("checks").sum(),
            pl.col("up_checks").sum(),
            pl.when(degraded.null_count() == 0).then(degraded.sum()).alias("degraded_checks"),
        )
    )
    return _with_shares(counts).sort("bucket_start", "component")


def error_rates(clean: pl.DataFrame, every: str = "1h") -> pl.DataFrame:
    """Events, errors, error ratio and errors per hour per (bucket, component)."""
    bucket_hours = _every_us(every) / 3_600_000_000
    failed = (pl.col("kind") == "error") | pl.col("status").is_in(FAILED_STATUSES)
    return (
        _grouped(
            clean.lazy(),
            every,
            pl.len().cast(pl.Int64).alias("events"),
            failed.sum().cast(pl.Int64).alias("errors"),
        )
        .with_columns(
            (pl.col("errors") / pl.col("events")).alias("error_ratio"),
            (pl.col("errors") / bucket_hours).alias("errors_per_hour"),
        )
        .collect()
    )


def response_times(clean: pl.DataFrame, every: str = "1h") -> pl.DataFrame:
    """Average, p50, p95, p99 and max response time per (bucket, component).

    Percentiles use linear interpolation, the same definition as Postgres ``percentile_cont``.
    """
    rt = pl.col("response_time_ms")
    measured = clean.lazy().filter((pl.col("kind") == "health_check") & rt.is_not_null())
    return _grouped(
        measured.select("checked_at", "source", "response_time_ms"),
        every,
        pl.len().cast(pl.Int64).alias("samples"),
        rt.mean().alias("avg_ms"),
        rt.quantile(0.50, "linear").alias("p50_ms"),
        rt.quantile(0.95, "linear").alias("p95_ms"),
        rt.quantile(0.99, "linear").alias("p99_ms"),
        rt.max().alias("max_ms"),
        contiguous=True,
    ).collect()


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
