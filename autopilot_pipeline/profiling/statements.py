"""Query statistics per fingerprint: app-logged timings and pg_stat_statements deltas, merged. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from autopilot_pipeline.profiling.parsing import ParsedQuery

# --------------------------------------------------------------------------------------------- statistics


def query_stats(frame: pl.DataFrame, parsed: Mapping[str, ParsedQuery]) -> pl.DataFrame:
    """Per fingerprint: calls, total/mean/p95/max time, rows, first/last seen and a representative example.

    ``frame`` holds fingerprinted ``query_performance`` rows (query, execution_time_ms, rows_returned,
    logged_at, fingerprint). The example is the call whose time is closest to the fingerprint's median:
    its literals are typical, which matters when it is EXPLAINed.
    """
    rows = frame.filter(pl.col("fingerprint").is_not_null())
    if rows.height == 0:
        return empty_query_stats()
    rows = rows.with_columns(
        (pl.col("execution_time_ms") - pl.col("execution_time_ms").median().over("fingerprint"))
        .abs()
        .alias("_dist")
    )
    stats = (
        rows.sort("_dist", "logged_at", maintain_order=True)
        .group_by("fingerprint", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("calls"),
            pl.col("execution_time_ms").sum().alias("total_ms"),
            pl.col("execution_time_ms").mean().alias("mean_ms"),
            pl.col("execution_time_ms").quantile(0.95, interpolation="linear").alias("p95_ms"),
            pl.col("execution_time_ms").max().alias("max_ms"),
            pl.col("rows_returned").sum().cast(pl.Int64).alias("rows"),
            pl.col("logged_at").min().alias("first_seen_at"),
            pl.col("logged_at").max().alias("last_seen_at"),
            pl.col("query").first().alias("example_query"),
        )
    )
    meta = pl.DataFrame(
        {
            "fingerprint": list(parsed),
            "normalized_query": [q.normalized for q in parsed.values()],
            "statement_type": [q.statement for q in parsed.values()],
            "tables": [",".join(q.tables) for q in parsed.values()],
        },
        schema={
            "fingerprint": pl.String,
            "normalized_query": pl.String,
            "statement_type": pl.String,
            "tables": pl.String,
        },
    )
    return stats.join(meta, on="fingerprint", how="left").sort(
        "total_ms", "fingerprint", descending=[True, False]
    )


def empty_query_stats() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "fingerprint": pl.String,
            "calls": pl.Int64,
            "total_ms": pl.Float64,
            "mean_ms": pl.Float64,
            "p95_ms": pl.Float64,
            "max_ms": pl.Float64,
            "rows": pl.Int64,
            "first_seen_at": pl.Datetime("us", "UTC"),
            "last_seen_at": pl.Datetime("us", "UTC"),
            "example_query": pl.String,
            "normalized_query": pl.String,
            "statement_type": pl.String,
            "tables": pl.String,
        }
    )


def mark_new_fingerprints(
    stats: pl.DataFrame, first_seen: Mapping[str, Any], window_start: Any, slow_ms: float
) -> pl.DataFrame:
    """Flag ``is_slow`` (mean or p95 at or over ``slow_ms``) and ``is_new``: slow, and first seen in this window.

    ``first_seen`` maps fingerprints known before (from earlier runs) to when they were first seen, so a
    re-run of the same window flags the same fingerprints again (idempotent)."""
    known = pl.DataFrame(
        {"fingerprint": list(first_seen), "_known_since": list(first_seen.values())},
        schema={"fingerprint": pl.String, "_known_since": pl.Datetime("us", "UTC")},
    )
    slow = (pl.col("mean_ms") >= slow_ms) | (pl.col("p95_ms").fill_null(0.0) >= slow_ms)
    return (
        stats.join(known, on="fingerprint", how="left")
        .with_columns(
            pl.min_horizontal("_known_since", "first_seen_at").alias("first_seen_at"),
            slow.alias("is_slow"),
        )
        .with_columns(
            (
                pl.col("is_slow")
                & (pl.col("first_seen_at") >= pl.lit(window_start).dt.convert_time_zone("UTC"))
            )
            .fill_null(False)
            .alias("is_new")
        )
        .drop("_known_since")
    )


# pg_stat_statements: canonical name -> the view's column, newest name first. PG 13 renamed total_time to
# total_exec_time (and added planning times); PG 14 added toplevel; PG 17 renamed blk_read_time to
# shared_blk_read_time and added stats_since (when the entry started counting).
_STATEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "userid": ("userid",),
    "dbid": ("dbid",),
    "queryid": ("queryid",),
    "toplevel": ("toplevel",),
    "query": ("query",),
    "calls": ("calls",),
    "total_exec_ms": ("total_exec_time", "total_time"),
    "total_plan_ms": ("total_plan_time",),
    "rows": ("rows",),
    "shared_blks_hit": ("shared_blks_hit",),
    "shared_blks_read": ("shared_blks_read",),
    "blk_read_ms": ("shared_blk_read_time", "blk_read_time"),
    "stats_since": ("stats_since",),
}
_REQUIRED_STATEMENT_COLUMNS = ("userid", "dbid", "queryid", "query", "calls", "total_exec_ms", "rows")


def statements_columns(available: Iterable[str]) -> dict[str, str | None]:
    """Map canonical counter names to this server's pg_stat_statements columns (None: not in this version)."""
    have = set(available)
    mapping = {
        name: next((c for c in options if c in have), None) for name, options in _STATEMENT_COLUMNS.items()
    }
    missing = [name for name in _REQUIRED_STATEMENT_COLUMNS if mapping[name] is None]
    if missing:
        raise ValueError(f"pg_stat_statements lacks {', '.join(missing)} (unsupported version)")
    return mapping


_COUNTERS = (
    "calls",
    "total_exec_ms",
    "total_plan_ms",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "blk_read_ms",
)
_STATEMENT_KEY = ("userid", "dbid", "queryid", "toplevel")


def diff_statements(
    previous: pl.DataFrame | None, current: pl.DataFrame, reset: bool = False
) -> pl.DataFrame:
    """What happened between two pg_stat_statements snapshots (cumulative counters -> per-window deltas).

    An entry counts from zero again after ``pg_stat_statements_reset()`` (``reset``: the view's
    ``stats_reset`` moved), after eviction and re-entry (its ``stats_since`` moved, PG 17+) or whenever its
    counters went down; then its current values are the window's values. Entries with no new calls are
    dropped.
    """
    if previous is None or previous.height == 0 or reset:
        delta = current
    else:
        prev = previous.select(
            *_STATEMENT_KEY, *(pl.col(c).alias(f"_prev_{c}") for c in (*_COUNTERS, "stats_since"))
        )
        joined = current.join(prev, on=list(_STATEMENT_KEY), how="left", nulls_equal=True)
        restarted = (
            pl.col("_prev_calls").is_null()
            | (pl.col("calls") < pl.col("_prev_calls"))
            | (pl.col("total_exec_ms") < pl.col("_prev_total_exec_ms") - 1e-6)
            | (pl.col("stats_since").is_not_null() & (pl.col("stats_since") != pl.col("_prev_stats_since")))
        )
        delta = joined.with_columns(
            pl.when(restarted)
            .then(pl.col(c))
            .otherwise(pl.col(c) - pl.col(f"_prev_{c}").fill_null(0))
            .alias(c)
            for c in _COUNTERS
        ).drop([c for c in joined.columns if c.startswith("_prev_")])
    return delta.filter(pl.col("calls") > 0).with_columns(
        (pl.col("total_exec_ms") / pl.col("calls")).alias("mean_ms")
    )
