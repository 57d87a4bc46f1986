"""Performance profiling: query and table statistics, the slow-query analysis, recommendations, remediation.

Thin assets over :mod:`autopilot_pipeline.profiling.store` (the database edge) and
:mod:`autopilot_pipeline.profiling.advice` (the pure rules). Each writes its ``automation`` table and shows
what matters in the UI: the slowest queries, the recommendations and the remediation audit as tables.
Partitioned by monitored target only (see :mod:`autopilot_pipeline.defs.profiling.targets` for why not time).
"""

import dagster as dg
import polars as pl

from autopilot_pipeline.defs.meta import OWNERS, preview, record_frame
from autopilot_pipeline.defs.partitions import targets
from autopilot_pipeline.defs.profiling.resources import ProfilingResource
from autopilot_pipeline.defs.profiling.targets import profiling_target, publish, target_database
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.profiling.report import assemble_optimizations
from autopilot_pipeline.profiling.savings import savings_report
from autopilot_pipeline.profiling.store.catalog import collect_table_statistics, write_table_statistics
from autopilot_pipeline.profiling.store.recommendations import (
    generate_recommendations,
    read_open_recommendations,
)
from autopilot_pipeline.profiling.store.remediation import remediate
from autopilot_pipeline.profiling.store.savings import read_realized_savings, track_applied_indexes
from autopilot_pipeline.profiling.store.slow_queries import analyze_slow_queries, write_slow_queries
from autopilot_pipeline.profiling.store.statements import (
    collect_query_stats,
    db_now,
    latest_query_stats,
    write_query_stats,
)
from autopilot_pipeline.profiling.store.targets import (
    copy_query_stats,
    copy_recommendations,
    copy_slow_queries,
    copy_table_statistics,
)

GROUP = "profiling"
KINDS = {"postgres", "polars"}

query_performance = dg.AssetSpec(
    ["automation", "query_performance"],
    group_name="sources",
    kinds={"postgres"},
    description="Query timings the application logs with automation.log_query_performance(...) (the seed's API).",
)
pg_stat_statements = dg.AssetSpec(
    ["pg_catalog", "pg_stat_statements"],
    group_name="sources",
    kinds={"postgres"},
    description="Postgres' cumulative per-statement counters (extension pg_stat_statements), when installed.",
)
statistics_views = dg.AssetSpec(
    ["pg_catalog", "pg_stat_user_tables"],
    group_name="sources",
    kinds={"postgres"},
    description="The server's table and index statistics views (pg_stat_user_tables, pg_statio_user_tables, "
    "pg_stat_user_indexes) and catalogs.",
)

QUERY_STATS = dg.AssetKey(["automation", "query_stats"])
TABLE_STATISTICS = dg.AssetKey(["automation", "table_statistics"])
SLOW_QUERIES = dg.AssetKey(["automation", "slow_queries"])
RECOMMENDATIONS = dg.AssetKey(["automation", "performance_recommendations"])
REMEDIATION = dg.AssetKey(["automation", "remediation_audit"])


def _short(column: str, width: int = 90) -> pl.Expr:
    text = pl.col(column).str.replace_all(r"\s+", " ")
    return (
        pl.when(text.str.len_chars() > width)
        .then(text.str.slice(0, width - 1) + "…")
        .otherwise(text)
        .str.replace_all(r"\|", "/")  # keep the markdown table intact
        .alias(column)
    )


@dg.asset(
    key=QUERY_STATS,
    deps=[query_performance, pg_stat_statements],
    check_specs=[
        dg.AssetCheckSpec(
            "valid_query_texts",
            asset=QUERY_STATS,
            description="Counts query_performance texts skipped as unusable (unparseable, over "
            "64 KiB, odd encodings); WARN when any.",
        ),
        dg.AssetCheckSpec(
            "pg_stat_statements_available",
            asset=QUERY_STATS,
            description="pg_stat_statements is installed and readable (WARN with how to enable it).",
        ),
    ],
    partitions_def=targets,
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    description="Per-fingerprint query statistics (calls, total/mean/p95 ms, rows; new slow shapes flagged) "
    "from query_performance over the lookback window and from pg_stat_statements since its last snapshot. "
    "Fingerprints by PostgreSQL's own parser (pglast), so literals never split a query shape.",
)
def query_stats(
    context: dg.AssetExecutionContext, postgres: PostgresResource, profiling: ProfilingResource
) -> dg.MaterializeResult:
    settings = profiling.settings
    target = profiling_target(context)
    with target_database(postgres, target) as conn:
        with conn.transaction():  # the pg_stat_statements diff and snapshot together
            result = collect_query_stats(conn, settings, store_snapshot=True)
            written = write_query_stats(conn, result)
            # the catalog at the same moment: an index that appeared since the last run lies between two windows
            observation = track_applied_indexes(conn, at=result.window_end)
        publish(postgres, conn, target, lambda src, own, t: copy_query_stats(src, own, t, result.window_end))
    stats = result.stats
    top = (
        stats.sort("total_ms", descending=True)
        .head(15)
        .select(
            "source",
            "calls",
            pl.col("total_ms").round(1),
            pl.col("mean_ms").round(2),
            pl.col("p95_ms").round(2),
            "is_slow",
            "is_new",
            _short("normalized_query"),
        )
    )
    bad = result.bad_queries
    status = result.statements
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "target": target,
            "window_start": result.window_start.isoformat(),
            "window_end": result.window_end.isoformat(),
            "query_log_rows": result.rows_read,
            "fingerprints": stats["fingerprint"].n_unique() if stats.height else 0,
            "slow_fingerprints": int(stats["is_slow"].sum()) if stats.height else 0,
            "new_slow_fingerprints": int(stats["is_new"].sum()) if stats.height else 0,
            "bad_query_texts": result.bad_total,
            "pg_stat_statements": status.message,
            "pg_stat_statements_entries": result.statements_read,
            "new_indexes": len(observation.new),
            "top_queries": preview(top, rows=15),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="valid_query_texts",
                passed=result.bad_total == 0,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"{result.bad_total} of {result.rows_read} logged queries skipped: "
                    + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in bad.items())
                )
                if bad
                else f"all {result.rows_read} logged queries parsed",
                metadata={
                    "rows_read": result.rows_read,
                    **{f"skipped_{k}": n for k, n in bad.items()},
                    **{f"pg_stat_statements_skipped_{k}": n for k, n in result.statements_skipped.items()},
                },
            ),
            dg.AssetCheckResult(
                check_name="pg_stat_statements_available",
                passed=status.available,
                severity=dg.AssetCheckSeverity.WARN,
                description=status.message,
            ),
        ],
    )


@dg.asset(
    key=TABLE_STATISTICS,
    deps=[statistics_views],
    check_specs=[
        dg.AssetCheckSpec(
            "tables_captured",
            asset=TABLE_STATISTICS,
            description="The snapshot holds at least one user table.",
        )
    ],
    partitions_def=targets,
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    description="Snapshot of every user table's health: sequential vs index scans, live/dead tuples, last "
    "(auto)vacuum/analyze, cache hits, sizes, transaction-ID age (feeds the seed's table_health view).",
)
def table_statistics(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    target = profiling_target(context)
    with target_database(postgres, target) as conn:
        frame = collect_table_statistics(conn)
        captured_at = db_now(conn)
        with conn.transaction():
            written = write_table_statistics(conn, frame, captured_at)
        publish(postgres, conn, target, lambda src, own, t: copy_table_statistics(src, own, t, captured_at))
    worst = (
        frame.with_columns(
            (100.0 * pl.col("n_dead_tup") / (pl.col("n_live_tup") + pl.col("n_dead_tup")).clip(lower_bound=1))
            .round(1)
            .alias("dead_pct"),
            (
                100.0
                * pl.col("seq_scan")
                / (pl.col("seq_scan") + pl.col("idx_scan").fill_null(0)).clip(lower_bound=1)
            )
            .round(1)
            .alias("seq_scan_pct"),
            (pl.col("total_bytes") / 1048576).round(2).alias("total_mb"),
        )
        .sort("total_bytes", descending=True)
        .select(
            "schema_name",
            "table_name",
            "n_live_tup",
            "n_dead_tup",
            "dead_pct",
            "seq_scan",
            "seq_scan_pct",
            "total_mb",
            "xid_age",
        )
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "automation.table_statistics",
            "dagster/row_count": written,
            "target": target,
            "tables": frame.height,
            "total_mb": round(float(frame["total_bytes"].sum() or 0) / 1048576, 2) if frame.height else 0.0,
            "dead_tuples": int(frame["n_dead_tup"].sum() or 0) if frame.height else 0,
            "largest_tables": preview(worst, rows=15),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="tables_captured",
                passed=frame.height > 0,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{frame.height} tables captured",
            )
        ],
    )


@dg.asset(
    key=SLOW_QUERIES,
    deps=[QUERY_STATS],
    check_specs=[
        dg.AssetCheckSpec(
            "no_new_slow_queries",
            asset=SLOW_QUERIES,
            description="WARN when a slow query shape appeared for the first time.",
        )
    ],
    partitions_def=targets,
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    description="The seed's analyze_slow_queries: the heaviest query shapes EXPLAINed, and for each the index "
    "that helps, verified by the planner with HypoPG hypothetical indexes (Dexter's rule: >= 50 % cheaper "
    "on queries costing >= 100), or a labelled heuristic without HypoPG.",
)
def slow_queries(
    context: dg.AssetExecutionContext, postgres: PostgresResource, profiling: ProfilingResource
) -> dg.MaterializeResult:
    settings = profiling.settings
    target = profiling_target(context)
    with target_database(postgres, target) as conn:
        stats = latest_query_stats(conn)
        analysis = analyze_slow_queries(conn, stats, settings)
        written = write_slow_queries(conn, analysis)
        publish(postgres, conn, target, copy_slow_queries)
    frame = analysis.frame
    shown = (  # no statistics at all (a new target): an empty frame without numeric columns
        frame.select(
            "calls",
            pl.col("mean_ms").round(1),
            pl.col("p95_ms").round(1),
            "is_new",
            pl.col("index_key").str.replace("missing_index:", "").alias("index"),
            pl.col("saving_pct").round(1),
            "verification",
            _short("normalized_query", 80),
        )
        if frame.height
        else frame
    )
    new = frame.filter(pl.col("is_new")) if frame.height else frame
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "automation.slow_queries",
            "dagster/row_count": written,
            "target": target,
            "slow_queries": int(frame["is_slow"].sum()) if frame.height else 0,
            "analyzed": int((frame["plan_cost"].is_not_null()).sum()) if frame.height else 0,
            "with_index_advice": int(frame["index_key"].is_not_null().sum()) if frame.height else 0,
            "hypopg": analysis.hypopg,
            "verification": analysis.message,
            "top_slow_queries": preview(shown, rows=20),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_new_slow_queries",
                passed=new.height == 0,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{new.height} new slow query shape(s)"
                if new.height
                else "no new slow query shapes",
                metadata={
                    "new_slow_queries": preview(
                        new.select("calls", pl.col("mean_ms").round(1), _short("normalized_query"))
                        if new.height
                        else new,
                        rows=20,
                    )
                },
            )
        ],
    )


@dg.asset(
    key=RECOMMENDATIONS,
    deps=[SLOW_QUERIES, TABLE_STATISTICS],
    check_specs=[
        dg.AssetCheckSpec(
            "no_high_priority_recommendations",
            asset=RECOMMENDATIONS,
            description="WARN while high-priority recommendations are open.",
        )
    ],
    partitions_def=targets,
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    description="The seed's generate_recommendations: missing indexes (ranked by estimated time saved), "
    "indexes for foreign keys whose parent is deleted from, unused and duplicate indexes (never constraint or "
    "foreign-key ones), each applied index's realized saving beside the predicted one, VACUUM/ANALYZE by autovacuum's own formulas, wraparound risk, cache hit "
    "ratio and connection pressure, under stable keys (reruns update; implemented advice is recognized).",
)
def performance_recommendations(
    context: dg.AssetExecutionContext, postgres: PostgresResource, profiling: ProfilingResource
) -> dg.MaterializeResult:
    target = profiling_target(context)
    with target_database(postgres, target) as conn:
        run = generate_recommendations(conn, profiling.settings)
        open_recs = read_open_recommendations(conn)
        savings = savings_report(read_realized_savings(conn))
        publish(postgres, conn, target, copy_recommendations)
    report = {**assemble_optimizations(open_recs), "realizedSavings": savings}
    table = record_frame(
        open_recs,
        {
            "priority": pl.String,
            "recommendation_type": pl.String,
            "table_name": pl.String,
            "estimated_improvement_pct": pl.Float64,
            "description": pl.String,
            "action_sql": pl.String,
        },
    ).with_columns(_short("description", 120), _short("action_sql", 100))
    high = sum(1 for r in open_recs if r["priority"] == "high")
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "automation.performance_recommendations",
            "target": target,
            "open_recommendations": len(open_recs),
            "high_priority": high,
            **{f"type_{k}": v for k, v in run.by_type.items()},
            "implemented_since_last_run": len(run.implemented),
            "obsolete_removed": len(run.removed),
            "recommendations": preview(table, rows=30),
            "applied_indexes": len(savings),
            "realized_savings": preview(_savings_table(savings), rows=30),
            "optimize_system": dg.MetadataValue.json(report),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_high_priority_recommendations",
                passed=high == 0,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{high} high-priority recommendation(s) open" if high else "none open",
            )
        ],
    )


def _savings_table(savings: list[dict]) -> pl.DataFrame:
    """Predicted beside realized, one applied index a row (the status instead of a number while measuring)."""
    return record_frame(
        savings,
        {
            "index": pl.String,
            "source": pl.String,
            "queries": pl.Int64,
            "predicted_pct": pl.Float64,
            "predicted_saved_ms": pl.Float64,
            "realized_pct": pl.Float64,
            "realized_saved_ms": pl.Float64,
            "mean_ms_before": pl.Float64,
            "mean_ms_after": pl.Float64,
            "calls_after": pl.Int64,
            "status": pl.String,
        },
        {
            "predicted_pct": "predictedSavingPct",
            "predicted_saved_ms": "predictedSavedMs",
            "realized_pct": "realizedSavingPct",
            "realized_saved_ms": "realizedSavedMs",
            "mean_ms_before": "meanMsBefore",
            "mean_ms_after": "meanMsAfter",
            "calls_after": "callsAfter",
        },
    )


@dg.asset(
    key=REMEDIATION,
    deps=[RECOMMENDATIONS],
    partitions_def=targets,
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    description="Auto-remediation, opt-in (AUTOPILOT_AUTO_REMEDIATE=1 or the profiling resource's "
    "auto_remediate): high-priority, HypoPG-verified indexes built with CREATE INDEX CONCURRENTLY; a dry run "
    "otherwise. Every step is audited in automation.remediation_audit.",
)
def remediation_audit(
    context: dg.AssetExecutionContext, postgres: PostgresResource, profiling: ProfilingResource
) -> dg.MaterializeResult:
    apply = profiling.settings.auto_remediate
    target = profiling_target(context)
    with target_database(postgres, target) as conn:  # indexes are built only where the advice came from
        results = remediate(
            conn,
            apply=apply,
            actor=f"dagster run {context.run_id}",
            lock_timeout_ms=profiling.settings.remediation_lock_timeout_ms,
            limit=profiling.settings.remediation_limit,
            settings=profiling.settings,
        )
    frame = record_frame(
        results, {"result": pl.String, "key": pl.String, "statement": pl.String, "error": pl.String}
    )
    failed = [r for r in results if r.get("result") == "failed"]
    for r in failed:
        context.log.warning(f"remediation of {r.get('key')} failed: {r.get('error')}")
    return dg.MaterializeResult(
        metadata={
            "target": target,
            "mode": "apply" if apply else "dry_run",
            "applied": sum(1 for r in results if r.get("result") == "applied"),
            "failed": len(failed),
            "dry_run": sum(1 for r in results if r.get("result") == "dry_run"),
            "actions": preview(frame, rows=20),
        }
    )
