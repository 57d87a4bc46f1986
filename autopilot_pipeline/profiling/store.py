"""Performance profiling at the database edge: statistics, plans, hypothetical indexes and remediation.

The seed's functions, in Python:

- :func:`collect_query_stats` — ``automation.query_performance`` (app-logged, parser fingerprints) and
  ``pg_stat_statements`` (cumulative counters, snapshotted and diffed per run);
- :func:`collect_table_statistics` — table health from ``pg_stat_user_tables``, ``pg_statio_user_tables``
  and sizes, snapshotted into ``automation.table_statistics``;
- :func:`analyze_slow_queries` — EXPLAIN the heaviest fingerprints and ask the planner whether an index
  helps (HypoPG hypothetical indexes; a labelled heuristic without HypoPG);
- :func:`generate_recommendations` — index, vacuum, analyze, wraparound, cache and connection advice into
  ``automation.performance_recommendations`` under stable keys;
- :func:`optimize_system` — the seed's ``optimize_system`` JSON;
- :func:`remediate` — opt-in: build high-priority, planner-verified indexes with CREATE INDEX CONCURRENTLY.

Query texts from the log are EXPLAINed only after pglast has parsed them as exactly one SELECT, UPDATE or
DELETE; they run through the extended protocol (which refuses a second statement) in a read-only
transaction with a statement timeout. EXPLAIN without ANALYZE never executes the query.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from autopilot_pipeline.postgres.io import copy_frame, epoch_us, read_frame
from autopilot_pipeline.profiling import advice as core
from autopilot_pipeline.profiling.advice import (
    ExistingIndex,
    IndexCandidate,
    IndexVerdict,
    ParsedQuery,
    ProfilingSettings,
    Recommendation,
)

__all__ = [
    "BuildResult",
    "QueryStatsResult",
    "RecommendationRun",
    "SlowQueryAnalysis",
    "StatementsStatus",
    "analyze_slow_queries",
    "build_recommendations",
    "collect_query_stats",
    "collect_table_statistics",
    "create_index_concurrently",
    "database_stats",
    "explain",
    "explain_analyze_ms",
    "generate_recommendations",
    "hypopg_schema",
    "latest_query_stats",
    "optimize_system",
    "read_indexes",
    "read_open_recommendations",
    "read_query_log",
    "read_slow_queries",
    "remediate",
    "statements_status",
    "verdicts_from_slow_queries",
    "write_query_stats",
    "write_slow_queries",
    "write_table_statistics",
]

#: Tables in these schemas get no index advice: catalogs and the pipeline's own tables (indexed by migrations).
IGNORED_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", "automation", "analytics"})
EXPLAIN_TIMEOUT = "10s"
_TS = pl.Datetime("us", "UTC")


def _now(conn: psycopg.Connection) -> datetime:
    """The server's clock: windows and "since" times agree with timestamps the server wrote."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0].astimezone(UTC)


# --------------------------------------------------------------------------------------------- pg_stat_statements


@dataclass(frozen=True)
class StatementsStatus:
    """Whether pg_stat_statements can be read here, and if not, what to do about it."""

    available: bool
    message: str
    schema: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    has_info: bool = False


def statements_status(conn: psycopg.Connection) -> StatementsStatus:
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    if row is None:
        offered = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone()
        how = (
            "run CREATE EXTENSION pg_stat_statements (it must also be in shared_preload_libraries)"
            if offered
            else "the server has no pg_stat_statements (install the contrib package)"
        )
        return StatementsStatus(False, f"pg_stat_statements is not installed in this database: {how}")
    schema = row[0]
    view = sql.Identifier(schema, "pg_stat_statements")
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(view))
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return StatementsStatus(
            False,
            "pg_stat_statements is installed but not loaded: add it to shared_preload_libraries and restart",
            schema,
        )
    except psycopg.errors.InsufficientPrivilege:
        return StatementsStatus(
            False, "no privilege to read pg_stat_statements (grant pg_read_all_stats)", schema
        )
    names = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (f'"{schema}".pg_stat_statements',),
        ).fetchall()
    ]
    has_info = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".pg_stat_statements_info',)
    ).fetchone()[0]  # type: ignore[index]
    try:
        columns = core.statements_columns(names)
    except ValueError as exc:
        return StatementsStatus(False, str(exc), schema)
    return StatementsStatus(True, "pg_stat_statements is available", schema, columns, bool(has_info))


_SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "userid": pl.Int64(),
    "dbid": pl.Int64(),
    "queryid": pl.Int64(),
    "toplevel": pl.Boolean(),
    "calls": pl.Int64(),
    "total_exec_ms": pl.Float64(),
    "total_plan_ms": pl.Float64(),
    "rows": pl.Int64(),
    "shared_blks_hit": pl.Int64(),
    "shared_blks_read": pl.Int64(),
    "blk_read_ms": pl.Float64(),
    "stats_since": pl.Int64(),
}


def _read_statements(
    conn: psycopg.Connection, status: StatementsStatus
) -> tuple[pl.DataFrame, datetime | None]:
    """This database's pg_stat_statements entries (canonical column names) and the view's last reset."""
    cols = status.columns
    select = []
    for name, dtype in {**_SNAPSHOT_SCHEMA, "query": pl.String()}.items():
        source = cols.get(name)
        if name == "stats_since":
            select.append(
                epoch_us(source, "stats_since") if source else sql.SQL("NULL::bigint AS stats_since")
            )
        elif source is None:
            default = "true" if name == "toplevel" else "NULL"
            select.append(sql.SQL(default + " AS {}").format(sql.Identifier(name)))
        elif dtype == pl.Int64:
            select.append(sql.SQL("{}::bigint AS {}").format(sql.Identifier(source), sql.Identifier(name)))
        else:
            select.append(sql.SQL("{} AS {}").format(sql.Identifier(source), sql.Identifier(name)))
    query = sql.SQL(
        "SELECT {cols} FROM {view} WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).format(
        cols=sql.SQL(", ").join(select), view=sql.Identifier(status.schema or "public", "pg_stat_statements")
    )
    frame = read_frame(conn, query, None, {**_SNAPSHOT_SCHEMA, "query": pl.String()}, ("stats_since",))
    reset = None
    if status.has_info:
        row = conn.execute(
            sql.SQL("SELECT stats_reset FROM {}").format(
                sql.Identifier(status.schema or "public", "pg_stat_statements_info")
            )
        ).fetchone()
        reset = row[0].astimezone(UTC) if row and row[0] else None
    return frame, reset


def _previous_snapshot(conn: psycopg.Connection) -> tuple[pl.DataFrame, datetime | None, datetime | None]:
    """The stored snapshot, when it was taken and the stats_reset it saw."""
    schema = {**_SNAPSHOT_SCHEMA, "captured_at": pl.Int64(), "stats_reset": pl.Int64()}
    query = sql.SQL(
        "SELECT userid, dbid, queryid, toplevel, calls, total_exec_ms, total_plan_ms, rows, shared_blks_hit, "
        "shared_blks_read, blk_read_ms, {since}, {captured}, {reset} FROM automation.pg_stat_statements_snapshots"
    ).format(since=epoch_us("stats_since"), captured=epoch_us("captured_at"), reset=epoch_us("stats_reset"))
    frame = read_frame(conn, query, None, schema, ("stats_since", "captured_at", "stats_reset"))
    if frame.height == 0:
        return frame.drop("captured_at", "stats_reset"), None, None
    return frame.drop("captured_at", "stats_reset"), frame["captured_at"].max(), frame["stats_reset"].max()


def _store_snapshot(
    conn: psycopg.Connection, current: pl.DataFrame, captured: datetime, reset: datetime | None
) -> None:
    conn.execute("DELETE FROM automation.pg_stat_statements_snapshots")
    copy_frame(
        conn,
        "automation.pg_stat_statements_snapshots",
        current.drop("query").with_columns(
            pl.lit(captured).cast(_TS).alias("captured_at"), pl.lit(reset).cast(_TS).alias("stats_reset")
        ),
    )


# --------------------------------------------------------------------------------------------- query statistics


@dataclass
class QueryStatsResult:
    """Per-fingerprint statistics of one run, both sources, and what was skipped and why.

    ``bad_queries`` counts unusable ``query_performance`` texts by kind (empty, too_long, odd_encoding,
    unparseable); they are skipped, never fatal."""

    stats: pl.DataFrame
    bad_queries: dict[str, int]
    rows_read: int
    statements: StatementsStatus
    window_start: datetime
    window_end: datetime
    statements_window_start: datetime | None = None
    statements_read: int = 0
    statements_skipped: dict[str, int] = field(default_factory=dict)  # pg_stat_statements texts not parsed
    parsed: dict[str, ParsedQuery] = field(default_factory=dict)

    @property
    def bad_total(self) -> int:
        return sum(self.bad_queries.values())


_LOG_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "query": pl.String(),
    "execution_time_ms": pl.Float64(),
    "rows_returned": pl.Int64(),
    "source": pl.String(),
    "logged_at": pl.Int64(),
}


def read_query_log(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    """``automation.query_performance`` rows logged in ``[start, end)`` (an index range on logged_at)."""
    query = sql.SQL(
        "SELECT id, query, execution_time_ms, rows_returned, source, {logged} FROM automation.query_performance "
        "WHERE logged_at >= %s AND logged_at < %s"
    ).format(logged=epoch_us("logged_at"))
    return read_frame(conn, query, (start, end), _LOG_SCHEMA, ("logged_at",))


def _known_fingerprints(conn: psycopg.Connection, fingerprints: Sequence[str]) -> dict[str, datetime]:
    if not fingerprints:
        return {}
    rows = conn.execute(
        "SELECT fingerprint, first_seen_at FROM automation.query_fingerprints WHERE fingerprint = ANY(%s)",
        (list(fingerprints),),
    ).fetchall()
    return {fp: seen.astimezone(UTC) for fp, seen in rows}


def _with_window(stats: pl.DataFrame, source: str, start: datetime | None, end: datetime) -> pl.DataFrame:
    return stats.with_columns(
        pl.lit(source).alias("source"),
        pl.lit(start).cast(_TS).alias("window_start"),
        pl.lit(end).cast(_TS).alias("window_end"),
    )


def _user_table(name: str) -> bool:
    schema, _, table = name.rpartition(".")
    return schema not in core.SYSTEM_SCHEMAS and not table.startswith("pg_")


def _statement_stats(
    delta: pl.DataFrame, window_end: datetime
) -> tuple[pl.DataFrame, dict[str, int], dict[str, ParsedQuery]]:
    """pg_stat_statements deltas per fingerprint. Utility statements (COPY, SET, DDL) and statements on no
    user table (``SELECT 1``, catalog lookups) are left out: no index or query change concerns them."""
    if delta.height == 0:
        return core.empty_query_stats(), {}, {}
    fingerprinted, bad, parsed = core.fingerprint_queries(delta)
    keep = {
        fp for fp, q in parsed.items() if q.statement != "utility" and any(_user_table(t) for t in q.tables)
    }
    rows = fingerprinted.filter(pl.col("fingerprint").is_in(list(keep)))
    if rows.height == 0:
        return core.empty_query_stats(), bad, {}
    stats = (
        rows.sort("total_exec_ms", descending=True, maintain_order=True)
        .group_by("fingerprint", maintain_order=True)
        .agg(
            pl.col("calls").sum().cast(pl.Int64),
            pl.col("total_exec_ms").sum().alias("total_ms"),
            pl.col("rows").sum().cast(pl.Int64),
            pl.col("query").first().alias("example_query"),
        )
        .with_columns(
            (pl.col("total_ms") / pl.col("calls")).alias("mean_ms"),
            pl.lit(None, pl.Float64).alias("p95_ms"),
            pl.lit(None, pl.Float64).alias("max_ms"),
            pl.lit(window_end).cast(_TS).alias("first_seen_at"),
            pl.lit(window_end).cast(_TS).alias("last_seen_at"),
        )
    )
    meta = pl.DataFrame(
        {
            "fingerprint": list(keep),
            "normalized_query": [parsed[f].normalized for f in keep],
            "statement_type": [parsed[f].statement for f in keep],
            "tables": [",".join(parsed[f].tables) for f in keep],
        },
        schema={
            "fingerprint": pl.String,
            "normalized_query": pl.String,
            "statement_type": pl.String,
            "tables": pl.String,
        },
    )
    stats = stats.join(meta, on="fingerprint", how="left").select(core.empty_query_stats().columns)
    return stats, bad, {f: parsed[f] for f in keep}


def collect_query_stats(
    conn: psycopg.Connection,
    settings: ProfilingSettings | None = None,
    *,
    end: datetime | None = None,
    store_snapshot: bool = False,
) -> QueryStatsResult:
    """Per-fingerprint statistics from both sources.

    The app log is read for ``[end - lookback, end)``. pg_stat_statements is diffed against the stored
    snapshot; with ``store_snapshot`` the current counters replace it, so the next run's window starts here
    (the asset does that; ``optimize_system`` only looks). Call inside a transaction to make the diff and
    the snapshot write atomic.
    """
    settings = settings or ProfilingSettings()
    end = end or _now(conn)
    start = end - timedelta(hours=settings.lookback_hours)
    log = read_query_log(conn, start, end)
    fingerprinted, bad, parsed = core.fingerprint_queries(log)
    app = core.query_stats(fingerprinted, parsed)
    app = core.mark_new_fingerprints(
        app, _known_fingerprints(conn, app["fingerprint"].to_list()), start, settings.slow_ms
    )
    frames = [_with_window(app, "app_log", start, end)]
    status = statements_status(conn)
    statements_start: datetime | None = None
    statements_read = 0
    statements_skipped: dict[str, int] = {}
    if status.available:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('autopilot.pg_stat_statements_snapshot'))")
        current, reset = _read_statements(conn, status)
        statements_read = current.height
        previous, captured, previous_reset = _previous_snapshot(conn)
        reset_moved = reset is not None and previous_reset is not None and reset > previous_reset
        delta = core.diff_statements(previous if captured else None, current, reset=reset_moved)
        statements_start = (reset if reset_moved else captured) if captured else reset
        pgss, pgss_bad, pgss_parsed = _statement_stats(delta, end)
        statements_skipped = pgss_bad
        for fp, q in pgss_parsed.items():
            parsed.setdefault(fp, q)
        known = _known_fingerprints(conn, pgss["fingerprint"].to_list())
        pgss = core.mark_new_fingerprints(pgss, known, statements_start or end, settings.slow_ms)
        if (
            captured is None
        ):  # the first snapshot is a baseline: everything since the last reset, nothing "new"
            pgss = pgss.with_columns(pl.lit(False).alias("is_new"))
        frames.append(_with_window(pgss, "pg_stat_statements", statements_start, end))
        if store_snapshot:
            _store_snapshot(conn, current, end, reset)
    stats = pl.concat(frames, how="vertical_relaxed")
    return QueryStatsResult(
        stats,
        bad,
        log.height,
        status,
        start,
        end,
        statements_start,
        statements_read,
        statements_skipped,
        parsed,
    )


_STATS_COLUMNS = (
    "window_start",
    "window_end",
    "source",
    "fingerprint",
    "calls",
    "total_ms",
    "mean_ms",
    "p95_ms",
    "max_ms",
    "rows",
    "is_slow",
    "is_new",
    "first_seen_at",
    "statement_type",
    "tables",
    "normalized_query",
    "example_query",
)


def write_query_stats(conn: psycopg.Connection, result: QueryStatsResult, retention_days: int = 90) -> int:
    """Store the run's statistics (replacing a run with the same window end) and remember fingerprints."""
    with conn.transaction():
        return _write_query_stats(conn, result, retention_days)


def _write_query_stats(conn: psycopg.Connection, result: QueryStatsResult, retention_days: int) -> int:
    stats = result.stats
    conn.execute(
        "DELETE FROM automation.query_stats WHERE window_end = %s OR window_end < %s",
        (result.window_end, result.window_end - timedelta(days=retention_days)),
    )
    written = copy_frame(conn, "automation.query_stats", stats.select(_STATS_COLUMNS))
    if stats.height:
        seen = (
            stats.sort("source")  # app_log first: its example has literals
            .group_by("fingerprint", maintain_order=True)
            .agg(
                pl.col("normalized_query").first(),
                pl.col("statement_type").first(),
                pl.col("tables").first(),
                pl.col("example_query").first(),
                pl.col("first_seen_at").min(),
                pl.col("window_end").max().alias("last_seen_at"),
            )
        )
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS autopilot_seen (LIKE automation.query_fingerprints) ON COMMIT DROP"
        )
        copy_frame(conn, "pg_temp.autopilot_seen", seen)
        conn.execute(
            "INSERT INTO automation.query_fingerprints SELECT * FROM pg_temp.autopilot_seen "
            "ON CONFLICT (fingerprint) DO UPDATE SET "
            "first_seen_at = least(query_fingerprints.first_seen_at, excluded.first_seen_at), "
            "last_seen_at = greatest(query_fingerprints.last_seen_at, excluded.last_seen_at), "
            "example_query = coalesce(query_fingerprints.example_query, excluded.example_query)"
        )
        conn.execute("DROP TABLE pg_temp.autopilot_seen")
    return written


def latest_query_stats(conn: psycopg.Connection) -> pl.DataFrame:
    """The most recent window of each source from ``automation.query_stats``."""
    schema: dict[str, pl.DataType] = {
        "window_start": pl.Int64(),
        "window_end": pl.Int64(),
        "source": pl.String(),
        "fingerprint": pl.String(),
        "calls": pl.Int64(),
        "total_ms": pl.Float64(),
        "mean_ms": pl.Float64(),
        "p95_ms": pl.Float64(),
        "max_ms": pl.Float64(),
        "rows": pl.Int64(),
        "is_slow": pl.Boolean(),
        "is_new": pl.Boolean(),
        "first_seen_at": pl.Int64(),
        "statement_type": pl.String(),
        "tables": pl.String(),
        "normalized_query": pl.String(),
        "example_query": pl.String(),
    }
    query = sql.SQL(
        "SELECT {ws}, {we}, source, fingerprint, calls, total_ms, mean_ms, p95_ms, max_ms, rows, is_slow, is_new, "
        "{fs}, statement_type, tables, normalized_query, example_query FROM automation.query_stats q "
        "WHERE window_end = (SELECT max(window_end) FROM automation.query_stats l WHERE l.source = q.source)"
    ).format(ws=epoch_us("window_start"), we=epoch_us("window_end"), fs=epoch_us("first_seen_at"))
    return read_frame(conn, query, None, schema, ("window_start", "window_end", "first_seen_at"))


# --------------------------------------------------------------------------------------------- table health

_TABLE_STATS_SQL = """
SELECT s.schemaname AS schema_name, s.relname AS table_name,
       s.seq_scan, s.seq_tup_read, s.idx_scan, s.idx_tup_fetch, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       {last_vacuum}, {last_autovacuum}, {last_analyze}, {last_autoanalyze},
       io.heap_blks_read, io.heap_blks_hit, io.idx_blks_read, io.idx_blks_hit,
       pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes,
       pg_total_relation_size(c.oid) AS total_bytes,
       c.reltuples::float8 AS reltuples, s.n_ins_since_vacuum, s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
       s.vacuum_count, s.autovacuum_count, s.analyze_count, s.autoanalyze_count,
       greatest(age(c.relfrozenxid), coalesce(age(t.relfrozenxid), 0))::bigint AS xid_age,
       coalesce(o.opts ->> 'autovacuum_enabled', current_setting('autovacuum'))::boolean AS autovacuum_enabled,
       coalesce(o.opts ->> 'autovacuum_vacuum_threshold', current_setting('autovacuum_vacuum_threshold'))::float8
           AS vac_threshold,
       coalesce(o.opts ->> 'autovacuum_vacuum_scale_factor',
                current_setting('autovacuum_vacuum_scale_factor'))::float8 AS vac_scale,
       coalesce(o.opts ->> 'autovacuum_vacuum_max_threshold',
                current_setting('autovacuum_vacuum_max_threshold', true))::float8 AS vac_max_threshold,
       coalesce(o.opts ->> 'autovacuum_vacuum_insert_threshold',
                current_setting('autovacuum_vacuum_insert_threshold', true))::float8 AS ins_threshold,
       coalesce(o.opts ->> 'autovacuum_vacuum_insert_scale_factor',
                current_setting('autovacuum_vacuum_insert_scale_factor', true))::float8 AS ins_scale,
       coalesce(o.opts ->> 'autovacuum_analyze_threshold', current_setting('autovacuum_analyze_threshold'))::float8
           AS ana_threshold,
       coalesce(o.opts ->> 'autovacuum_analyze_scale_factor',
                current_setting('autovacuum_analyze_scale_factor'))::float8 AS ana_scale,
       coalesce(o.opts ->> 'autovacuum_freeze_max_age', current_setting('autovacuum_freeze_max_age'))::float8
           AS freeze_max_age
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN pg_statio_user_tables io ON io.relid = s.relid
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(option_name, option_value) AS opts FROM pg_options_to_table(c.reloptions)
) o ON true
"""

TABLE_STATS_SCHEMA: dict[str, pl.DataType] = {
    "schema_name": pl.String(),
    "table_name": pl.String(),
    "seq_scan": pl.Int64(),
    "seq_tup_read": pl.Int64(),
    "idx_scan": pl.Int64(),
    "idx_tup_fetch": pl.Int64(),
    "n_live_tup": pl.Int64(),
    "n_dead_tup": pl.Int64(),
    "n_mod_since_analyze": pl.Int64(),
    "last_vacuum": pl.Int64(),
    "last_autovacuum": pl.Int64(),
    "last_analyze": pl.Int64(),
    "last_autoanalyze": pl.Int64(),
    "heap_blks_read": pl.Int64(),
    "heap_blks_hit": pl.Int64(),
    "idx_blks_read": pl.Int64(),
    "idx_blks_hit": pl.Int64(),
    "table_bytes": pl.Int64(),
    "index_bytes": pl.Int64(),
    "total_bytes": pl.Int64(),
    "reltuples": pl.Float64(),
    "n_ins_since_vacuum": pl.Int64(),
    "n_tup_ins": pl.Int64(),
    "n_tup_upd": pl.Int64(),
    "n_tup_del": pl.Int64(),
    "vacuum_count": pl.Int64(),
    "autovacuum_count": pl.Int64(),
    "analyze_count": pl.Int64(),
    "autoanalyze_count": pl.Int64(),
    "xid_age": pl.Int64(),
    "autovacuum_enabled": pl.Boolean(),
    "vac_threshold": pl.Float64(),
    "vac_scale": pl.Float64(),
    "vac_max_threshold": pl.Float64(),
    "ins_threshold": pl.Float64(),
    "ins_scale": pl.Float64(),
    "ana_threshold": pl.Float64(),
    "ana_scale": pl.Float64(),
    "freeze_max_age": pl.Float64(),
}
_SETTINGS_COLUMNS = (
    "autovacuum_enabled",
    "vac_threshold",
    "vac_scale",
    "vac_max_threshold",
    "ins_threshold",
    "ins_scale",
    "ana_threshold",
    "ana_scale",
    "freeze_max_age",
)
_TIMES = ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze")


def collect_table_statistics(conn: psycopg.Connection) -> pl.DataFrame:
    """Health of every user table, with the effective autovacuum settings (table options over globals).

    Statistics are the server's cumulative counters as of now; a backend flushes its own at most once a
    second, so very recent activity may show up in the next snapshot.
    """
    query = sql.SQL(_TABLE_STATS_SQL).format(**{t: epoch_us(t) for t in _TIMES})
    frame = read_frame(conn, query, None, TABLE_STATS_SCHEMA, _TIMES)
    return frame.sort("schema_name", "table_name")


def write_table_statistics(
    conn: psycopg.Connection, frame: pl.DataFrame, captured_at: datetime | None = None
) -> int:
    """Append one snapshot (``captured_at`` for every row) to ``automation.table_statistics``."""
    captured_at = captured_at or _now(conn)
    rows = frame.drop(_SETTINGS_COLUMNS).with_columns(pl.lit(captured_at).cast(_TS).alias("captured_at"))
    return copy_frame(conn, "automation.table_statistics", rows)


# --------------------------------------------------------------------------------------------- indexes

_INDEXES_SQL = """
SELECT n.nspname, t.relname, i.relname, am.amname,
       ARRAY(SELECT a.attname::text FROM generate_series(0, x.indnkeyatts - 1) AS k
             LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k] AND a.attnum > 0
             ORDER BY k) AS columns,
       x.indisunique, x.indisprimary, x.indisvalid AND x.indisready AS valid,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid
               AND c.contype IN ('p', 'u', 'x')) AS backs_constraint,
       pg_get_expr(x.indpred, x.indrelid), pg_get_expr(x.indexprs, x.indrelid),
       x.indclass::text, x.indcollation::text, x.indoption::text, x.indnkeyatts,
       s.idx_scan, pg_relation_size(x.indexrelid), pg_get_indexdef(x.indexrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = x.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND i.relkind = 'i' AND t.relkind IN ('r', 'm')
ORDER BY 1, 2, 3
"""


def read_indexes(conn: psycopg.Connection) -> list[ExistingIndex]:
    """Every index on user tables (partitioned parents' indexes left out: they are never scanned)."""
    out = []
    for row in conn.execute(_INDEXES_SQL).fetchall():
        (
            schema,
            table,
            name,
            method,
            columns,
            unique,
            primary,
            valid,
            constraint,
            predicate,
            expressions,
            opclasses,
            collations,
            options,
            nkey,
            scans,
            size,
            definition,
        ) = row
        out.append(
            ExistingIndex(
                schema=schema,
                table=table,
                name=name,
                method=method,
                columns=tuple(columns),
                unique=unique,
                primary=primary,
                valid=valid,
                backs_constraint=constraint,
                predicate=predicate,
                expressions=expressions,
                opclasses=tuple(opclasses.split()[:nkey]),
                collations=tuple(collations.split()[:nkey]),
                options=tuple(options.split()[:nkey]),
                scans=scans,
                size_bytes=size or 0,
                definition=definition,
            )
        )
    return out


def hypopg_schema(conn: psycopg.Connection) -> str | None:
    """The schema HypoPG is installed in, or None."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'hypopg'"
    ).fetchone()
    return row[0] if row else None


# --------------------------------------------------------------------------------------------- EXPLAIN


@contextmanager
def _read_only(conn: psycopg.Connection) -> Iterator[None]:
    """A read-only transaction with a statement timeout, rolled back at the end."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(EXPLAIN_TIMEOUT)))
        yield


def _param_count(text: str) -> int:
    found = [int(n) for n in re.findall(r"\$(\d+)", text)]
    return max(found, default=0)


def explain(conn: psycopg.Connection, query: str, generic: bool = False) -> dict[str, Any]:
    """The planner's plan (EXPLAIN FORMAT JSON, VERBOSE) of one statement, without running it.

    ``generic``: the text has ``$n`` parameters (pg_stat_statements): a generic plan — ``GENERIC_PLAN`` on
    PG 16+, a prepared statement under ``plan_cache_mode = force_generic_plan`` before that.
    Must be called inside :func:`_read_only` (or another transaction the caller controls).
    """
    prepared = False
    if generic and conn.info.server_version >= 160000:
        statement = "EXPLAIN (FORMAT JSON, VERBOSE, GENERIC_PLAN) " + query
    elif generic:
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute("PREPARE autopilot_explain AS " + query)
        prepared = True
        args = ", ".join(["NULL"] * _param_count(query))
        statement = "EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE autopilot_explain" + (f"({args})" if args else "")
    else:
        statement = "EXPLAIN (FORMAT JSON, VERBOSE) " + query
    cur = conn.cursor()
    # Literal texts (the app log) go through the extended protocol (binary), which takes one statement
    # only. Texts with $n placeholders (pg_stat_statements' own normalized single statements) need the
    # simple protocol, where $n is not read as a bind parameter.
    cur.execute(statement, binary=not generic)
    row = cur.fetchone()
    if prepared:
        conn.execute("DEALLOCATE autopilot_explain")
    assert row is not None
    plan = row[0]
    if isinstance(plan, str | bytes):
        plan = json.loads(plan)
    return plan[0]["Plan"]


def explain_analyze_ms(conn: psycopg.Connection, query: str, repeat: int = 3) -> float:
    """Best-of-``repeat`` measured execution time (EXPLAIN ANALYZE) of a read query. This RUNS the query:
    for tests, benchmarks and before/after checks of an index, not for arbitrary logged texts."""
    best = float("inf")
    for _ in range(repeat):
        cur = conn.cursor()
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, binary=True)
        row = cur.fetchone()
        assert row is not None
        plan = row[0] if not isinstance(row[0], str | bytes) else json.loads(row[0])
        best = min(best, float(plan[0]["Execution Time"]))
    return best


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


def _seq_scans(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{node.get('Schema', 'public')}.{node['Relation Name']}", node)
        for node in _plan_nodes(plan)
        if node.get("Node Type") == "Seq Scan" and "Relation Name" in node
    ]


# --------------------------------------------------------------------------------------------- slow queries


@dataclass
class SlowQueryAnalysis:
    """The analyzed fingerprints (one row each) and what the planner said."""

    frame: pl.DataFrame
    verdicts: list[IndexVerdict]
    hypopg: bool
    message: str
    analyzed_at: datetime


@dataclass
class _Catalog:
    """Table names as written -> schema.table, their row estimates and columns (looked up once per run)."""

    conn: psycopg.Connection
    names: dict[str, str | None] = field(default_factory=dict)
    reltuples: dict[str, float] = field(default_factory=dict)
    columns: dict[str, set[str]] = field(default_factory=dict)

    def resolve(self, tables: Iterable[str]) -> None:
        todo = [t for t in tables if t not in self.names]
        for name in todo:
            row = None
            try:
                with self.conn.transaction():
                    row = self.conn.execute(
                        "SELECT n.nspname, c.relname, c.reltuples::float8, "
                        "ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 "
                        "AND NOT attisdropped) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.oid = to_regclass(%s)",
                        (name,),
                    ).fetchone()
            except psycopg.Error:
                row = None  # a name to_regclass cannot read (odd quoting): not a table we can advise on
            if row is None:
                self.names[name] = None
                continue
            qualified = f"{row[0]}.{row[1]}"
            self.names[name] = qualified
            self.reltuples[qualified] = max(float(row[2]), 0.0)
            self.columns[qualified] = set(row[3])

    def resolve_query(self, query: ParsedQuery) -> ParsedQuery:
        self.resolve(query.tables)
        mapping = {k: v for k, v in self.names.items() if v is not None}
        return query.resolved(mapping, self.columns)


def _hypothetical_cost(
    conn: psycopg.Connection, schema: str, candidate: IndexCandidate, query: str, generic: bool
) -> float | None:
    """The query's plan cost with ``candidate`` as a HypoPG hypothetical index, or None when HypoPG cannot
    model it. Creation, EXPLAIN and reset happen in one transaction, so behind a transaction-mode pooler
    they reach the same backend (hypothetical indexes live in one backend's memory)."""
    try:
        with _read_only(conn):
            conn.execute(
                sql.SQL("SELECT indexname FROM {}.hypopg_create_index(%s)").format(sql.Identifier(schema)),
                (candidate.hypothetical_definition(),),
            )
            try:
                with conn.transaction():  # a savepoint: a failed EXPLAIN still lets us reset
                    return float(explain(conn, query, generic=generic)["Total Cost"])
            finally:
                conn.execute(sql.SQL("SELECT {}.hypopg_reset()").format(sql.Identifier(schema)))
    except psycopg.Error:
        return None  # e.g. a column type without a B-tree operator class


_HEURISTIC_ROW_COST = 1.0  # per row fetched through the index: between a cached and a random page read
_HEURISTIC_DESCENT = 4.0  # walking down the B-tree


def _heuristic_costs(
    plan: dict[str, Any],
    candidates: Sequence[IndexCandidate],
    catalog: _Catalog,
    query: ParsedQuery,
    indexes: Sequence[ExistingIndex],
) -> dict[IndexCandidate, float]:
    """Without HypoPG, a crude cost model: an index replaces a selective sequential scan by a B-tree descent
    plus one unit per row it keeps (for ``ORDER BY ... LIMIT n`` on that table: n rows). Only the widest
    candidate per table is offered (it serves the most predicates); none where the scan keeps more than
    20 % of the table, and none on a table where an existing index already leads with one of the query's
    columns (whether a different one would be better is for the planner to say). A guess, labelled as such
    wherever it is shown."""
    base = float(plan["Total Cost"])
    scans = dict(_seq_scans(plan))
    limit = float(plan["Plan Rows"]) if plan.get("Node Type") == "Limit" else None
    order_tables = {u.table for u in query.columns if u.role == "order" and u.table}
    used = {(u.table, u.column) for u in query.columns if u.table}
    usable = {
        ix.qualified_table
        for ix in indexes
        if ix.valid and ix.predicate is None and ix.columns and (ix.qualified_table, ix.columns[0]) in used
    }
    widest: dict[str, IndexCandidate] = {}
    for c in candidates:
        if (
            c.table in scans
            and c.table not in usable
            and (c.table not in widest or len(c.columns) > len(widest[c.table].columns))
        ):
            widest[c.table] = c
    out = {}
    for table, candidate in widest.items():
        node = scans[table]
        rows = max(catalog.reltuples.get(table, 0.0), 1.0)
        kept = max(float(node.get("Plan Rows", rows)), 1.0)
        if kept / rows > 0.2:
            continue  # reading > 20 % of a table through an index rarely beats a sequential scan
        read = min(kept, limit) if limit is not None and table in order_tables else kept
        scan_cost = min(float(node["Total Cost"]), base)
        out[candidate] = max(base - scan_cost + _HEURISTIC_DESCENT + _HEURISTIC_ROW_COST * read, 0.0)
    return out


def _analysis_schema() -> dict[str, pl.DataType]:
    return {
        "fingerprint": pl.String(),
        "plan_cost": pl.Float64(),
        "seq_scan_tables": pl.String(),
        "index_key": pl.String(),
        "index_cost": pl.Float64(),
        "saving_pct": pl.Float64(),
        "verification": pl.String(),
        "analysis": pl.String(),
    }


def analyze_slow_queries(
    conn: psycopg.Connection, stats: pl.DataFrame, settings: ProfilingSettings | None = None
) -> SlowQueryAnalysis:
    """EXPLAIN the heaviest fingerprints and find the index that helps each, verified by the planner.

    Candidates come from the WHERE/JOIN/ORDER BY columns of the query on large tables it reads sequentially
    and that no existing index already covers. With HypoPG each candidate is created hypothetically and the
    query re-planned: the cheapest candidate is kept if it saves ``min_saving_pct`` on a query costing at
    least ``min_cost`` (Dexter's rule). Without HypoPG the saving is a labelled heuristic.
    """
    settings = settings or ProfilingSettings()
    analyzed_at = _now(conn)
    combined = core.combine_query_sources(stats) if stats.height else stats
    hypo = hypopg_schema(conn)
    message = (
        f"index advice verified with HypoPG ({hypo}.hypopg)"
        if hypo
        else "HypoPG is not installed: index advice is a heuristic estimate (install hypopg to verify it)"
    )
    if combined.height == 0:
        empty = pl.DataFrame(schema=_analysis_schema())
        return SlowQueryAnalysis(
            _slow_frame(combined, empty, analyzed_at), [], hypo is not None, message, analyzed_at
        )
    chosen = (
        combined.filter(
            pl.col("statement_type").is_in(["select", "update", "delete"])
            & ((pl.col("mean_ms") >= settings.min_mean_ms) | pl.col("is_slow"))
        )
        .sort("total_ms", "fingerprint", descending=[True, False])
        .head(settings.analyze_top_n)
    )
    catalog = _Catalog(conn)
    indexes = read_indexes(conn)
    verdicts: list[IndexVerdict] = []
    queries: dict[str, tuple[str, bool]] = {}
    rows = []
    for row in chosen.iter_rows(named=True):
        fp = row["fingerprint"]
        text = row["example_query"]
        generic = row.get("example_source") == "pg_stat_statements"  # $n parameters, no literals
        try:
            parsed = catalog.resolve_query(core.parse_query(text))
        except core.BadQuery as exc:
            rows.append(
                {"fingerprint": fp, "verification": "none", "analysis": f"not analyzable: {exc.reason}"}
            )
            continue
        try:
            with _read_only(conn):
                plan = explain(conn, text, generic=generic)
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())[:200]
            rows.append({"fingerprint": fp, "verification": "none", "analysis": f"EXPLAIN failed: {reason}"})
            continue
        queries[fp] = (text, generic)
        base = float(plan["Total Cost"])
        scanned = [
            t
            for t, _ in _seq_scans(plan)
            if t.split(".")[0] not in IGNORED_SCHEMAS
            and catalog.reltuples.get(t, 0.0) >= settings.min_table_rows
        ]
        candidates = [
            c
            for c in core.index_candidates(parsed, settings.max_index_columns)
            if c.table in scanned
            and c.table.split(".")[0] not in IGNORED_SCHEMAS
            and core.covering_index(c, indexes) is None
        ]
        if hypo:
            costs = {}
            for candidate in candidates:
                cost = _hypothetical_cost(conn, hypo, candidate, text, generic)
                if cost is not None:
                    costs[candidate] = cost
            verdict = core.choose_index(fp, base, costs, settings, "hypopg")
        else:
            costs = _heuristic_costs(plan, candidates, catalog, parsed, indexes)
            verdict = core.choose_index(fp, base, costs, settings, "heuristic")
        if not scanned:
            verdict = replace(verdict, reason="no sequential scan of a large table")
        verdicts.append(verdict)
        rows.append(
            {
                "fingerprint": fp,
                "plan_cost": base,
                "seq_scan_tables": ",".join(scanned),
                "verification": verdict.verification if verdict.candidate else "none",
                "analysis": verdict.reason,
            }
        )

    def refit(wide: IndexCandidate, members: Sequence[IndexVerdict]) -> list[IndexVerdict] | None:
        if not hypo:
            return [replace(v, candidate=wide) for v in members]
        out = []
        for v in members:
            text, generic = queries[v.fingerprint]
            cost = _hypothetical_cost(conn, hypo, wide, text, generic)
            if cost is None:
                return None
            new = replace(v, candidate=wide, cost=cost)
            if new.saving_pct < settings.min_saving_pct:
                return None
            out.append(replace(new, reason=f"cost {v.base_cost:.0f} -> {cost:.0f} (shared index)"))
        return out

    verdicts = core.merge_index_advice(verdicts, refit)
    by_fp = {v.fingerprint: v for v in verdicts}
    for r in rows:
        v = by_fp.get(r["fingerprint"])
        if v is not None and v.candidate is not None:
            r.update(
                index_key=v.candidate.key,
                index_cost=v.cost,
                saving_pct=round(v.saving_pct, 2),
                verification=v.verification,
                analysis=v.reason,
            )
    analysis = pl.DataFrame(rows, schema=_analysis_schema())
    return SlowQueryAnalysis(
        _slow_frame(combined, analysis, analyzed_at), verdicts, hypo is not None, message, analyzed_at
    )


_SLOW_COLUMNS = (
    "fingerprint",
    "analyzed_at",
    "source",
    "calls",
    "total_ms",
    "mean_ms",
    "p95_ms",
    "is_slow",
    "is_new",
    "statement_type",
    "tables",
    "normalized_query",
    "example_query",
    "plan_cost",
    "seq_scan_tables",
    "index_key",
    "index_cost",
    "saving_pct",
    "verification",
    "analysis",
)


def _slow_frame(combined: pl.DataFrame, analysis: pl.DataFrame, analyzed_at: datetime) -> pl.DataFrame:
    """Analyzed fingerprints plus every other slow one (not analyzable: no verdict)."""
    if combined.height == 0:
        return pl.DataFrame(schema={c: pl.String() for c in _SLOW_COLUMNS}).clear()
    keep = combined.filter(pl.col("is_slow") | pl.col("fingerprint").is_in(analysis["fingerprint"].to_list()))
    return (
        keep.join(analysis, on="fingerprint", how="left")
        .with_columns(
            pl.lit(analyzed_at).cast(_TS).alias("analyzed_at"),
            pl.col("verification").fill_null("none"),
            pl.col("analysis").fill_null(
                "not analyzed: not a SELECT/UPDATE/DELETE, or below the analysis cut"
            ),
        )
        .select(_SLOW_COLUMNS)
        .sort("total_ms", "fingerprint", descending=[True, False])
    )


def write_slow_queries(conn: psycopg.Connection, analysis: SlowQueryAnalysis) -> int:
    """Replace ``automation.slow_queries`` with this analysis (one transaction)."""
    with conn.transaction():
        conn.execute("DELETE FROM automation.slow_queries")
        return copy_frame(conn, "automation.slow_queries", analysis.frame)


def read_slow_queries(conn: psycopg.Connection) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        "fingerprint": pl.String(),
        "source": pl.String(),
        "calls": pl.Int64(),
        "total_ms": pl.Float64(),
        "mean_ms": pl.Float64(),
        "p95_ms": pl.Float64(),
        "is_slow": pl.Boolean(),
        "is_new": pl.Boolean(),
        "tables": pl.String(),
        "normalized_query": pl.String(),
        "plan_cost": pl.Float64(),
        "index_key": pl.String(),
        "index_cost": pl.Float64(),
        "saving_pct": pl.Float64(),
        "verification": pl.String(),
        "analysis": pl.String(),
    }
    query = (
        "SELECT fingerprint, source, calls, total_ms, mean_ms, p95_ms, is_slow, is_new, tables, normalized_query, "
        "plan_cost, index_key, index_cost, saving_pct, verification, analysis FROM automation.slow_queries"
    )
    return read_frame(conn, query, None, schema)


def verdicts_from_slow_queries(frame: pl.DataFrame) -> list[IndexVerdict]:
    """Rebuild the planner verdicts stored in ``automation.slow_queries``."""
    out = []
    for r in frame.filter(pl.col("index_key").is_not_null()).iter_rows(named=True):
        out.append(
            IndexVerdict(
                r["fingerprint"],
                float(r["plan_cost"] or 0.0),
                core.candidate_from_key(r["index_key"]),
                r["index_cost"],
                r["verification"],
                r["analysis"] or "",
            )
        )
    return out


# --------------------------------------------------------------------------------------------- recommendations


def database_stats(conn: psycopg.Connection) -> core.DatabaseStats:
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
    return core.DatabaseStats(
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


def _stats_age_days(conn: psycopg.Connection) -> float | None:
    row = conn.execute(
        "SELECT extract(epoch FROM now() - coalesce(stats_reset, pg_postmaster_start_time())) / 86400 "
        "FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


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
    now = _now(conn)
    tables_dt = collect_table_statistics(conn)
    indexes = read_indexes(conn)
    db = database_stats(conn)
    workload = {r["fingerprint"]: (int(r["calls"]), float(r["mean_ms"])) for r in slow.iter_rows(named=True)}
    advice = core.rank_index_advice(verdicts, workload)
    advice = [a for a in advice if core.covering_index(a["candidate"], indexes) is None]
    advised = {fp for a in advice for fp in a["fingerprints"]}
    freeze = float(conn.execute("SELECT current_setting('autovacuum_freeze_max_age')::float8").fetchone()[0])  # type: ignore[index]
    app_indexes = [ix for ix in indexes if ix.schema not in IGNORED_SCHEMAS]  # ours are set by migrations
    duplicates = core.duplicate_index_findings(app_indexes)
    flagged = {f"{ix.schema}.{ix.name}" for ix in app_indexes} & {r.key.split(":", 1)[1] for r in duplicates}
    unused = core.unused_index_findings(
        app_indexes,
        _stats_age_days(conn),
        settings,
        exclude=[*_recently_applied(conn, settings.unused_min_stats_days), *flagged],
    )
    recs = [
        *core.missing_index_findings(advice, settings),
        *core.query_optimization_findings(slow, advised, settings),
        *unused,
        *duplicates,
        *core.maintenance_findings(tables_dt, now, settings),
        *core.wraparound_findings(tables_dt, freeze, {"name": db.name, "xid_age": db.xid_age}, settings),
        *core.resource_findings(db, settings),
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
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('autopilot.recommendations'))")
        for r in recs:
            conn.execute(
                """
                INSERT INTO automation.performance_recommendations AS p
                    (recommendation_key, recommendation_type, priority, table_name, description, action_sql, impact,
                     estimated_improvement_pct, metadata, last_seen_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (recommendation_key) DO UPDATE SET
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
            "FROM automation.performance_recommendations WHERE NOT implemented AND NOT (recommendation_key = ANY(%s))",
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
        implemented, obsolete = core.stale_recommendations(open_recs, indexes, tables)
        for key, resolution in implemented.items():
            conn.execute(
                "UPDATE automation.performance_recommendations SET implemented = true, implemented_at = now(), "
                "resolution = %s, updated_at = now() WHERE recommendation_key = %s",
                (resolution, key),
            )
        if obsolete:
            conn.execute(
                "DELETE FROM automation.performance_recommendations WHERE recommendation_key = ANY(%s)",
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
    conn: psycopg.Connection, include_implemented: bool = False
) -> list[dict[str, Any]]:
    """Recommendations as dicts, highest priority and improvement first."""
    rows = conn.execute(
        sql.SQL(
            "SELECT {cols} FROM automation.performance_recommendations {where} "
            "ORDER BY CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, "
            "estimated_improvement_pct DESC NULLS LAST, recommendation_key"
        ).format(
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in _REC_COLUMNS),
            where=sql.SQL("" if include_implemented else "WHERE NOT implemented"),
        )
    ).fetchall()
    return [dict(zip(_REC_COLUMNS, row, strict=True)) for row in rows]


def optimize_system(
    conn: psycopg.Connection, settings: ProfilingSettings | None = None, refresh: bool = True
) -> dict[str, Any]:
    """The seed's ``optimize_system`` task: ``{totalOptimizations, optimizations[...], estimatedImpact}``.

    ``refresh`` re-reads statistics and re-plans the heaviest queries first (recommendations are upserted
    under their stable keys; the pg_stat_statements snapshot of the scheduled run is not touched); without
    it the stored recommendations are summarized as they are.
    """
    settings = settings or ProfilingSettings()
    if refresh:
        with conn.transaction(force_rollback=True):  # read the statements delta without storing a snapshot
            stats = collect_query_stats(conn, settings, store_snapshot=False).stats
        analysis = analyze_slow_queries(conn, stats, settings)
        generate_recommendations(conn, settings, analysis)
    return core.assemble_optimizations(read_open_recommendations(conn))


# --------------------------------------------------------------------------------------------- remediation


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    index: str
    statement: str
    duration_ms: float
    error: str | None = None
    cleaned_up: bool = False


def create_index_concurrently(
    conn: psycopg.Connection,
    candidate: IndexCandidate,
    name: str | None = None,
    *,
    unique: bool = False,
    lock_timeout_ms: int = 5_000,
    statement_timeout_ms: int = 0,
    cleanup_lock_timeout_ms: int = 60_000,
) -> BuildResult:
    """CREATE INDEX CONCURRENTLY, which may not run inside a transaction block: ``conn`` must be in
    autocommit mode and idle. A failed concurrent build leaves an INVALID index behind (it is in the catalog
    from the first phase on); it is dropped, concurrently too, before returning."""
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("CREATE INDEX CONCURRENTLY needs an autocommit connection outside a transaction")
    name = name or core.index_name(candidate)
    schema, _ = core.split_table(candidate.table)
    statement = candidate.definition(name)
    if unique:
        statement = statement.replace("CREATE INDEX", "CREATE UNIQUE INDEX", 1)
    qualified = f"{core.quote_ident(schema)}.{core.quote_ident(name)}"
    started = time.perf_counter()
    error = None
    try:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_ms)}ms")))
        conn.execute(
            sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{int(statement_timeout_ms)}ms"))
        )
        conn.execute(statement)
    except psycopg.Error as exc:
        error = " ".join(str(exc).split())[:500]
    finally:
        conn.execute("RESET lock_timeout")
        conn.execute("RESET statement_timeout")
    duration = (time.perf_counter() - started) * 1000.0
    if error is None:
        return BuildResult(True, name, statement, duration)
    cleaned = False
    invalid = conn.execute(
        "SELECT NOT (x.indisvalid AND x.indisready) FROM pg_index x WHERE x.indexrelid = to_regclass(%s)",
        (qualified,),
    ).fetchone()
    if invalid and invalid[0]:
        try:
            conn.execute(
                sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(cleanup_lock_timeout_ms)}ms"))
            )
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.SQL(qualified)))
            cleaned = True
        except psycopg.Error as exc:
            error += f"; and the invalid index {qualified} could not be dropped: {' '.join(str(exc).split())[:200]}"
        finally:
            conn.execute("RESET lock_timeout")
    return BuildResult(False, name, statement, duration, error, cleaned)


def _free_index_name(conn: psycopg.Connection, candidate: IndexCandidate) -> str:
    """The conventional name, or a hash-suffixed one when another index already has it."""
    schema, _ = core.split_table(candidate.table)
    name = core.index_name(candidate)
    taken = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{core.quote_ident(schema)}.{core.quote_ident(name)}",)
    ).fetchone()
    if taken and taken[0]:
        name = f"{name[:50]}_{core.stable_hash(candidate.key + 'x'):08x}"
    return name


def remediate(
    conn: psycopg.Connection,
    *,
    apply: bool,
    actor: str,
    lock_timeout_ms: int = 5_000,
    statement_timeout_ms: int = 0,
    limit: int = 5,
) -> list[dict[str, Any]]:
    """Auto-remediation: the open, high-priority, HypoPG-verified missing-index recommendations.

    ``apply=False`` (the default everywhere) only records what would be done. ``apply=True`` builds each
    index with CREATE INDEX CONCURRENTLY (autocommit, never in a transaction), one at a time, at most
    ``limit`` per run, and marks the recommendation implemented. Every step is an audit row
    (``automation.remediation_audit``: who, when, what, result). One remediation runs at a time.
    """
    if not conn.autocommit:
        raise RuntimeError("remediation needs an autocommit connection (CREATE INDEX CONCURRENTLY)")
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext('autopilot.remediate'))").fetchone()
    if not got or not got[0]:
        return [{"result": "skipped", "error": "another remediation is running"}]
    try:
        rows = conn.execute(
            "SELECT id, recommendation_key, action_sql, metadata FROM automation.performance_recommendations "
            "WHERE recommendation_type = 'missing_index' AND priority = 'high' AND NOT implemented "
            "AND metadata ->> 'verification' = 'hypopg' "
            "ORDER BY (metadata ->> 'estimated_saved_ms')::float8 DESC NULLS LAST, recommendation_key LIMIT %s",
            (limit,),
        ).fetchall()
        return [
            _remediate_one(conn, row, apply, actor, lock_timeout_ms, statement_timeout_ms) for row in rows
        ]
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext('autopilot.remediate'))")


def _audit(conn: psycopg.Connection, rec_id: int, key: str, action: str, mode: str, actor: str) -> int:
    row = conn.execute(
        "INSERT INTO automation.remediation_audit (recommendation_id, recommendation_key, action_sql, mode, actor) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (rec_id, key, action, mode, actor),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _finish(conn: psycopg.Connection, audit_id: int, result: str, error: str | None, details: dict) -> None:
    conn.execute(
        "UPDATE automation.remediation_audit SET finished_at = clock_timestamp(), result = %s, error = %s, "
        "details = %s WHERE id = %s",
        (result, error, Jsonb(details), audit_id),
    )


def _remediate_one(
    conn: psycopg.Connection,
    row: tuple,
    apply: bool,
    actor: str,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
) -> dict[str, Any]:
    rec_id, key, action_sql, _metadata = row
    candidate = core.candidate_from_key(key)
    mode = "apply" if apply else "dry_run"
    existing = core.covering_index(candidate, read_indexes(conn))
    if existing is not None:
        audit_id = _audit(conn, rec_id, key, action_sql, mode, actor)
        conn.execute(
            "UPDATE automation.performance_recommendations SET implemented = true, implemented_at = now(), "
            "resolution = 'already_present', updated_at = now() WHERE id = %s",
            (rec_id,),
        )
        details = {"index": f"{existing.schema}.{existing.name}", "reason": "an index already covers it"}
        _finish(conn, audit_id, "skipped", None, details)
        return {"key": key, "result": "skipped", **details}
    name = _free_index_name(conn, candidate)
    statement = candidate.definition(name)
    audit_id = _audit(conn, rec_id, key, statement, mode, actor)
    schema, _ = core.split_table(candidate.table)
    if not apply:
        _finish(conn, audit_id, "dry_run", None, {"index": f"{schema}.{name}"})
        return {"key": key, "result": "dry_run", "statement": statement}
    built = create_index_concurrently(
        conn, candidate, name, lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms
    )
    details = {
        "index": f"{schema}.{name}",
        "duration_ms": round(built.duration_ms, 1),
        "invalid_index_dropped": built.cleaned_up,
    }
    if built.ok:
        conn.execute(
            "UPDATE automation.performance_recommendations SET implemented = true, implemented_at = now(), "
            "resolution = 'auto_applied', updated_at = now(), metadata = metadata || %s WHERE id = %s",
            (Jsonb({"applied_index": f"{schema}.{name}"}), rec_id),
        )
        _finish(conn, audit_id, "applied", None, details)
        return {"key": key, "result": "applied", "statement": statement, **details}
    _finish(conn, audit_id, "failed", built.error, details)
    return {"key": key, "result": "failed", "statement": statement, "error": built.error, **details}
