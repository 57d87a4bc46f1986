"""The catalog at the database edge: table health snapshots, existing indexes, HypoPG, and EXPLAIN in a
read-only transaction with a statement timeout (EXPLAIN without ANALYZE never executes the query)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.postgres.io import copy_frame, epoch_us, read_frame
from autopilot_pipeline.profiling.indexes import ExistingIndex
from autopilot_pipeline.profiling.store.statements import EXPLAIN_TIMEOUT, TS, db_now

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
    captured_at = captured_at or db_now(conn)
    rows = frame.drop(_SETTINGS_COLUMNS).with_columns(pl.lit(captured_at).cast(TS).alias("captured_at"))
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
def read_only(conn: psycopg.Connection) -> Iterator[None]:
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
    Must be called inside :func:`read_only` (or another transaction the caller controls).
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


def seq_scans(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{node.get('Schema', 'public')}.{node['Relation Name']}", node)
        for node in _plan_nodes(plan)
        if node.get("Node Type") == "Seq Scan" and "Relation Name" in node
    ]
