"""Recommendations at the database edge: build them from the stored statistics and verdicts, replace the open
ones, and read them back in the seed's optimize_system shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from autopilot_pipeline.profiling.drops import drop_findings
from autopilot_pipeline.profiling.findings import (
    DatabaseStats,
    Recommendation,
    maintenance_findings,
    missing_index_findings,
    query_optimization_findings,
    resource_findings,
    wraparound_findings,
)
from autopilot_pipeline.profiling.foreign_keys import fk_protected_indexes, foreign_key_findings
from autopilot_pipeline.profiling.indexes import (
    ExistingIndex,
    IndexVerdict,
    covering_index,
    rank_index_advice,
    stale_recommendations,
)
from autopilot_pipeline.profiling.report import assemble_optimizations
from autopilot_pipeline.profiling.savings import savings_report
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.catalog import collect_table_statistics, read_indexes
from autopilot_pipeline.profiling.store.foreign_key_advice import foreign_key_evidence
from autopilot_pipeline.profiling.store.index_advice import index_details
from autopilot_pipeline.profiling.store.index_usage import (
    observation_periods,
    protected_indexes,
    read_foreign_keys,
    statistics_period,
    table_writes,
)
from autopilot_pipeline.profiling.store.savings import measure_realized_savings, read_realized_savings
from autopilot_pipeline.profiling.store.slow_queries import (
    SlowQueryAnalysis,
    analyze_slow_queries,
    read_slow_queries,
    verdicts_from_slow_queries,
)
from autopilot_pipeline.profiling.store.statements import IGNORED_SCHEMAS, collect_query_stats, db_now

DEFAULT = "default"  # this database's own rows (migration 0014); other targets' are copies of theirs

# --------------------------------------------------------------------------------------------- recommendations


def database_stats(conn: psycopg.Connection) -> DatabaseStats:
    row = conn.execute(
        """
        SELECT current_database(), coalesce(d.blks_hit, 0), coalesce(d.blks_read, 0),
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
               current_setting('max_connections')::int,
               current_setting('superuser_reserved_connections')::int
                   + coalesce(current_setting('reserved_connections', true)::int, 0),
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'idle'),
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
                    AND state LIKE 'idle in transaction%%'),
               current_setting('shared_buffers'),
               age(db.datfrozenxid)::bigint
        FROM pg_database db LEFT JOIN pg_stat_database d ON d.datid = db.oid
        WHERE db.datname = current_database()
        """
    ).fetchone()
    assert row is not None
    return DatabaseStats(
        name=row[0],
        blks_hit=int(row[1]),
        blks_read=int(row[2]),
        connections=int(row[3]),
        max_connections=int(row[4]),
        reserved_connections=int(row[5]),
        idle_connections=int(row[6]),
        idle_in_transaction=int(row[7]),
        shared_buffers=row[8],
        xid_age=int(row[9]),
    )


def _recently_applied(conn: psycopg.Connection, days: float) -> list[str]:
    """Indexes auto-remediation built recently: too young to be called unused."""
    rows = conn.execute(
        "SELECT details ->> 'index' FROM automation.remediation_audit WHERE result = 'applied' "
        "AND finished_at > now() - make_interval(secs => %s) AND details ? 'index'",
        (days * 86400,),
    ).fetchall()
    return [r[0] for r in rows]


@dataclass
class RecommendationRun:
    """What a run of :func:`generate_recommendations` changed."""

    recommendations: list[Recommendation]
    implemented: dict[str, str]
    removed: list[str]
    hypopg: bool = False

    @property
    def by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.recommendations:
            counts[r.type] = counts.get(r.type, 0) + 1
        return dict(sorted(counts.items()))


def build_recommendations(
    conn: psycopg.Connection,
    slow: pl.DataFrame,
    verdicts: Sequence[IndexVerdict],
    settings: ProfilingSettings,
) -> tuple[list[Recommendation], list[ExistingIndex], pl.DataFrame]:
    """All findings from live catalogs plus the slow-query analysis (no writes)."""
    now = db_now(conn)
    tables_dt = collect_table_statistics(conn)
    indexes = read_indexes(conn)
    db = database_stats(conn)
    workload = {r["fingerprint"]: (int(r["calls"]), float(r["mean_ms"])) for r in slow.iter_rows(named=True)}
    advice = rank_index_advice(verdicts, workload)
    advice = [a for a in advice if covering_index(a["candidate"], indexes) is None]
    texts = {
        r["fingerprint"]: r.get("normalized_query") or r.get("example_query") or ""
        for r in slow.iter_rows(named=True)
    }
    for a in advice:
        a["details"] = index_details(conn, a["candidate"], a["fingerprints"], texts, indexes, settings)
    advised = {fp for a in advice for fp in a["fingerprints"]}
    freeze = float(conn.execute("SELECT current_setting('autovacuum_freeze_max_age')::float8").fetchone()[0])  # type: ignore[index]
    app_indexes = [ix for ix in indexes if ix.schema not in IGNORED_SCHEMAS]  # ours are set by migrations
    period = statistics_period(conn)
    fks = read_foreign_keys(conn)
    protected = {
        **{k: f"serves foreign key {v}" for k, v in fk_protected_indexes(fks, app_indexes).items()},
        **protected_indexes(conn),
    }
    drops = drop_findings(
        app_indexes,
        period.days,
        settings,
        exclude=_recently_applied(conn, settings.unused_min_stats_days),
        observed=observation_periods(conn, period),
        protected=protected,
        writes=table_writes(conn, period),
    )
    foreign = foreign_key_findings(
        foreign_key_evidence(conn, fks, indexes, settings, slow, period),
        indexes,
        settings,
        advised=[a["candidate"] for a in advice],
    )
    recs = [
        *missing_index_findings(advice, settings),
        *foreign,
        *query_optimization_findings(slow, advised, settings),
        *drops,
        *maintenance_findings(tables_dt, now, settings),
        *wraparound_findings(tables_dt, freeze, {"name": db.name, "xid_age": db.xid_age}, settings),
        *resource_findings(db, settings),
    ]
    unique: dict[str, Recommendation] = {}
    for r in recs:
        unique.setdefault(r.key, r)
    return list(unique.values()), indexes, tables_dt


def generate_recommendations(
    conn: psycopg.Connection,
    settings: ProfilingSettings | None = None,
    analysis: SlowQueryAnalysis | None = None,
) -> RecommendationRun:
    """Upsert every finding under its stable key and settle the open ones a run no longer produces.

    A finding produced again updates its row (and reopens it if it had been resolved). An open one not
    produced is marked implemented when its fix is visible (the index exists, the table was vacuumed...),
    otherwise deleted as obsolete. ``analysis`` defaults to the stored ``automation.slow_queries``.
    """
    settings = settings or ProfilingSettings()
    if analysis is not None:
        slow, verdicts = analysis.frame, analysis.verdicts
    else:
        slow = read_slow_queries(conn)
        verdicts = verdicts_from_slow_queries(slow)
    recs, indexes, tables = build_recommendations(conn, slow, verdicts, settings)
    measure_realized_savings(conn, settings)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('autopilot.recommendations'))")
        for r in recs:
            conn.execute(
                """
                INSERT INTO automation.performance_recommendations AS p
                    (recommendation_key, recommendation_type, priority, table_name, description, action_sql, impact,
                     estimated_improvement_pct, metadata, last_seen_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (target, recommendation_key) DO UPDATE SET
                    recommendation_type = excluded.recommendation_type, priority = excluded.priority,
                    table_name = excluded.table_name, description = excluded.description,
                    action_sql = excluded.action_sql, impact = excluded.impact,
                    estimated_improvement_pct = excluded.estimated_improvement_pct, metadata = excluded.metadata,
                    last_seen_at = now(), updated_at = now(),
                    implemented = false, implemented_at = NULL, resolution = NULL
                """,
                (
                    r.key,
                    r.type,
                    r.priority,
                    r.table_name,
                    r.description,
                    r.action_sql,
                    r.impact,
                    r.estimated_improvement_pct,
                    Jsonb(r.metadata),
                ),
            )
        produced = [r.key for r in recs]
        open_rows = conn.execute(
            "SELECT recommendation_key, recommendation_type, table_name, created_at "
            "FROM automation.performance_recommendations "
            "WHERE target = 'default' AND NOT implemented AND NOT (recommendation_key = ANY(%s))",
            (produced,),
        ).fetchall()
        open_recs = [
            dict(
                zip(
                    ("recommendation_key", "recommendation_type", "table_name", "created_at"),
                    row,
                    strict=True,
                )
            )
            for row in open_rows
        ]
        implemented, obsolete = stale_recommendations(open_recs, indexes, tables)
        for key, resolution in implemented.items():
            conn.execute(
                "UPDATE automation.performance_recommendations SET implemented = true, implemented_at = now(), "
                "resolution = %s, updated_at = now() WHERE target = 'default' AND recommendation_key = %s",
                (resolution, key),
            )
        if obsolete:
            conn.execute(
                "DELETE FROM automation.performance_recommendations "
                "WHERE target = 'default' AND recommendation_key = ANY(%s)",
                (obsolete,),
            )
    return RecommendationRun(recs, implemented, obsolete, bool(analysis and analysis.hypopg))


_REC_COLUMNS = (
    "id",
    "recommendation_key",
    "recommendation_type",
    "priority",
    "table_name",
    "description",
    "action_sql",
    "impact",
    "estimated_improvement_pct",
    "implemented",
    "implemented_at",
    "resolution",
    "metadata",
    "created_at",
    "updated_at",
)


def read_open_recommendations(
    conn: psycopg.Connection, include_implemented: bool = False, target: str = DEFAULT
) -> list[dict[str, Any]]:
    """``target``'s recommendations as dicts, highest priority and improvement first. This database's own
    are ``default``'s; another target's are the copies its profiling run stored here."""
    rows = conn.execute(
        sql.SQL(
            "SELECT {cols} FROM automation.performance_recommendations {where} "
            "ORDER BY CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, "
            "estimated_improvement_pct DESC NULLS LAST, recommendation_key"
        ).format(
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in _REC_COLUMNS),
            where=sql.SQL(
                "WHERE target = %s" if include_implemented else "WHERE target = %s AND NOT implemented"
            ),
        ),
        (target,),
    ).fetchall()
    return [dict(zip(_REC_COLUMNS, row, strict=True)) for row in rows]


def optimize_system(
    conn: psycopg.Connection,
    settings: ProfilingSettings | None = None,
    refresh: bool = True,
    target: str = DEFAULT,
) -> dict[str, Any]:
    """The seed's ``optimize_system`` task: ``{totalOptimizations, optimizations[...], estimatedImpact}``,
    plus ``realizedSavings``: each applied index's predicted and measured saving.

    ``refresh`` re-reads statistics and re-plans the heaviest queries first (recommendations are upserted
    under their stable keys; the pg_stat_statements snapshot of the scheduled run is not touched); without
    it the stored recommendations are summarized as they are. ``target``: whose stored recommendations
    (another target's, read without ``refresh`` from the pipeline's database; realized savings stay in the
    target's own database, so they are listed only for ``default``).
    """
    settings = settings or ProfilingSettings()
    if refresh:
        with conn.transaction(force_rollback=True):  # read the statements delta without storing a snapshot
            stats = collect_query_stats(conn, settings, store_snapshot=False).stats
        analysis = analyze_slow_queries(conn, stats, settings)
        generate_recommendations(conn, settings, analysis)
    report = assemble_optimizations(read_open_recommendations(conn, target=target))
    report["realizedSavings"] = savings_report(read_realized_savings(conn)) if target == DEFAULT else []
    return report


def top_recommendations(
    conn: psycopg.Connection, limit: int = 5, target: str = DEFAULT
) -> list[tuple[str, str, str, float | None]]:
    """(priority, type, description, estimated improvement %) of ``target``'s best open recommendations
    (the order of the ``open_recommendations`` view, which shows ``default``'s)."""
    return conn.execute(
        "SELECT priority, recommendation_type, description, estimated_improvement_pct "
        "FROM automation.performance_recommendations WHERE target = %s AND NOT implemented "
        "ORDER BY CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, "
        "estimated_improvement_pct DESC NULLS LAST, recommendation_key LIMIT %s",
        (target, limit),
    ).fetchall()
