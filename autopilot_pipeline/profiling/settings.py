"""Profiling thresholds (one settings object for the domain) and the constants every profiling module shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: Longer query texts are skipped (counted as ``too_long``): a 64 KiB statement is generated SQL (a huge IN
#: list, a bulk VALUES), not something an index advisor can reason about, and parsing it costs more than it
#: tells.
MAX_QUERY_CHARS = 65_536
PRIORITIES = ("high", "medium", "low")
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}
#: Schemas whose tables never get index advice: the system catalogs and the pipeline's own tables.
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
XID_WRAP_LIMIT = 2**31  # transaction IDs left before wraparound, from a table's relfrozenxid
XID_STOP_MARGIN = 3_000_000  # the server refuses new XIDs this close to the limit


class ProfilingSettings(BaseModel):
    """The profiling domain's settings, each with the reason for its default. One object, read once (the
    ``profiling`` resource holds it; the CLI builds one) and passed down to every profiling function."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    slow_ms: float = 1000.0
    """A slow query, as the seed's ``slow_queries_summary`` (execution_time_ms >= 1000)."""
    lookback_hours: float = 24.0
    """The ``query_performance`` window of a daily run."""
    analyze_top_n: int = 50
    """Fingerprints (by total time) EXPLAINed per run."""
    min_mean_ms: float = 10.0
    """Faster queries are not worth an index."""
    min_cost: float = 100.0
    """Dexter: ignore queries the planner costs below 100."""
    min_saving_pct: float = 50.0
    """Dexter: keep an index only if it cuts the query's cost by >= 50 %."""
    min_table_rows: int = 10_000
    """A "large" table: smaller ones are read whole faster than via an index."""
    max_index_columns: int = 3
    """Columns of a candidate index at most (wider ones cost writes for little gain)."""
    high_saved_ms: float = 10_000.0
    """Verified advice saving >= 10 s per window is high priority."""
    min_dead_tuples: int = 1_000
    """Ignore the autovacuum formula on tiny tables (autovacuum handles them)."""
    stale_vacuum_days: float = 7.0
    """A table over its trigger and not vacuumed for this long is urgent."""
    unused_min_stats_days: float = 7.0
    """No unused index is proposed for dropping before its usage was observed this long (weekly jobs)."""
    cache_hit_min: float = 0.99
    """PgHero/pganalyze: below 99 % the working set does not fit in memory."""
    cache_min_blocks: int = 10_000
    """Below this many block reads + hits the ratio means little."""
    connections_medium: float = 0.7
    """Share of max_connections in use that is worth a medium-priority warning."""
    connections_high: float = 0.85
    """Share of max_connections in use that is urgent."""
    freeze_age_medium: float = 0.75
    """Of autovacuum_freeze_max_age."""
    freeze_age_high: float = 1.0
    """Of autovacuum_freeze_max_age: past it, anti-wraparound vacuum is overdue."""
    auto_remediate: bool = False
    """Build verified high-priority indexes (CREATE INDEX CONCURRENTLY); off: only record what would be built."""
    remediation_lock_timeout_ms: int = 5_000
    """lock_timeout of an index build, so it never queues behind a long transaction."""
    remediation_limit: int = 5
    """Index builds per run at most."""
    expression_min_saving_pct: float = 25.0
    """An expression index counts when the planner uses it and saves this much: with no statistics on the
    expression yet, the planner assumes 0.5 % of rows match an equality, which understates a selective one."""
    share_max_cost_ratio: float = 1.5
    """An index serves a query in the set cover if the query's plan with it costs at most 1.5x its plan with
    the query's own best candidate (or differs by < 0.5 % of the cost without any): sharing one index must not
    make a query noticeably slower than it could be."""
    partial_max_fraction: float = 0.005
    """A value matching <= 0.5 % of the rows gets a partial index (>= 200x smaller than the full one)."""
    brin_min_rows: int = 500_000
    """BRIN only pays off on large tables (one summary per 128 pages; small tables are scanned whole)."""
    brin_min_correlation: float = 0.95
    """|pg_stats.correlation| of the column: the physical order must follow the values for BRIN to skip."""
    max_candidates_per_table: int = 24
    """Hypothetical indexes tried on one table per run at most (each is one EXPLAIN per query)."""
    fk_join_min_calls: int = 1_000
    """Joins child -> parent per window that make a foreign key's index worth it without parent deletes."""
    realized_min_calls: int = 30
    """Calls before and after an index was applied needed to report its realized saving ("measuring")."""
    realized_baseline_days: float = 7.0
    """Statistics windows up to this long before an index was applied form its "before"."""
