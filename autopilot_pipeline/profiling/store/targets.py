"""Profiling results of another monitored target, copied into the pipeline's database under its name.

A target's profiling run works in the target's own database, exactly as for ``default``: the counters it
diffs (pg_stat_statements), the catalog it plans against (HypoPG), the indexes remediation builds and the
state that ties runs together (the statements snapshot, fingerprints, index catalog, realized savings,
remediation audit) all belong to that database. There its own rows are ``default``'s; here they become the
target's, so dashboards, the AI-ops ``optimizations`` and ``autopilot optimize --target`` read every target
from one place. The copy is a text ``COPY`` stream between the two servers: every column type goes through
unchanged, and nothing else of the target's database is read.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql

OWN = "default"  # in its own database a target's rows carry the default target
ALL = sql.SQL("true")


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    """Plain columns of ``table`` (no identity or generated ones, not ``target``) in table order."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "AND attidentity = '' AND attgenerated = '' AND attname <> 'target' ORDER BY attnum",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def copy_rows(
    source: psycopg.Connection,
    own: psycopg.Connection,
    table: str,
    target: str,
    condition: sql.Composable = ALL,
    replace: sql.Composable | None = None,
) -> int:
    """Copy ``source``'s own rows of ``table`` matching ``condition`` into ``own`` as ``target``'s, after
    deleting ``target``'s rows matching ``replace`` (all of them when None), in one transaction of ``own``."""
    if target == OWN:
        raise ValueError("the default target's rows are written in place, not copied")
    present = set(_columns(source, table))
    columns = [c for c in _columns(own, table) if c in present]  # a target migrated later than this one
    schema_name, table_name = table.split(".")
    ident = sql.Identifier(schema_name, table_name)
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    read = sql.SQL(
        "COPY (SELECT {target}, {names} FROM {table} WHERE target = {own} AND ({cond})) TO STDOUT"
    ).format(target=sql.Literal(target), names=names, table=ident, own=sql.Literal(OWN), cond=condition)
    write = sql.SQL("COPY {table} (target, {names}) FROM STDIN").format(table=ident, names=names)
    with own.transaction():
        own.execute(
            sql.SQL("DELETE FROM {table} WHERE target = %s AND ({cond})").format(
                table=ident, cond=replace if replace is not None else ALL
            ),
            (target,),
        )
        with own.cursor() as out, source.cursor() as cur:
            with cur.copy(read) as reader, out.copy(write) as writer:
                for block in reader:
                    writer.write(block)
            return max(out.rowcount, 0)


def copy_query_stats(
    source: psycopg.Connection,
    own: psycopg.Connection,
    target: str,
    window_end: datetime,
    retention_days: int = 90,
) -> int:
    """The run's windows (``window_end``), replacing a rerun's; windows past the retention are dropped."""
    return copy_rows(
        source,
        own,
        "automation.query_stats",
        target,
        sql.SQL("window_end = {}").format(sql.Literal(window_end)),
        sql.SQL(
            "window_end = {end} OR window_end < {end}::timestamptz - make_interval(days => {days})"
        ).format(end=sql.Literal(window_end), days=sql.Literal(retention_days)),
    )


def copy_table_statistics(
    source: psycopg.Connection, own: psycopg.Connection, target: str, captured_at: datetime
) -> int:
    """One snapshot (every table at ``captured_at``), appended like the default target's."""
    moment = sql.SQL("captured_at = {}").format(sql.Literal(captured_at))
    return copy_rows(source, own, "automation.table_statistics", target, moment, moment)


def copy_slow_queries(source: psycopg.Connection, own: psycopg.Connection, target: str) -> int:
    """The latest analysis replaces the target's previous one, as it does in place."""
    return copy_rows(source, own, "automation.slow_queries", target)


def copy_recommendations(source: psycopg.Connection, own: psycopg.Connection, target: str) -> int:
    """Every recommendation, open and implemented (with its resolution), replacing the target's copies."""
    return copy_rows(source, own, "automation.performance_recommendations", target)
