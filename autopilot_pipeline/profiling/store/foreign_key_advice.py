"""Evidence for foreign-key indexes at the database edge: parent deletes and updates, the statements that
delete from the parent or join child -> parent, and the plan cost of the RI check with and without the
index (HypoPG when installed, else a labelled heuristic)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import polars as pl
import psycopg

from autopilot_pipeline.profiling.drops import TableWrites
from autopilot_pipeline.profiling.foreign_keys import (
    ForeignKey,
    ForeignKeyEvidence,
    ServedQuery,
    covering_fk_index,
    heuristic_indexed_cost,
)
from autopilot_pipeline.profiling.index_selection import TableActivity
from autopilot_pipeline.profiling.indexes import (
    ExistingIndex,
    IndexCandidate,
    combine_query_sources,
    quote_ident,
)
from autopilot_pipeline.profiling.parsing import BadQuery, parse_query
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.catalog import explain, hypopg_schema, read_only
from autopilot_pipeline.profiling.store.index_usage import (
    StatisticsPeriod,
    read_table_activity,
    statistics_period,
)
from autopilot_pipeline.profiling.store.slow_queries import hypothetical_cost
from autopilot_pipeline.profiling.store.statements import latest_query_stats


def check_query(fk: ForeignKey) -> str:
    """The RI trigger's lookup in the child, as a plannable statement ($n parameters; FOR KEY SHARE left
    out: it does not change the plan and a read-only EXPLAIN need not lock)."""
    where = " AND ".join(f"{quote_ident(c)} = ${i}" for i, c in enumerate(fk.columns, start=1))
    return f"SELECT 1 FROM ONLY {quote_ident(fk.schema)}.{quote_ident(fk.table)} x WHERE {where}"


def _plan_cost(conn: psycopg.Connection, text: str, generic: bool) -> float | None:
    try:
        with read_only(conn):
            return float(explain(conn, text, generic=generic)["Total Cost"])
    except psycopg.Error:
        return None


def _workload(conn: psycopg.Connection, slow: pl.DataFrame | None) -> list[dict[str, Any]]:
    """Query shapes of the latest statistics windows (pg_stat_statements preferred), plus the slow-query
    analysis' rows not in them."""
    latest = latest_query_stats(conn)
    rows: dict[str, dict[str, Any]] = {}
    if latest.height:
        for r in combine_query_sources(latest).iter_rows(named=True):
            rows[r["fingerprint"]] = r
    if slow is not None and slow.height:
        for r in slow.iter_rows(named=True):
            rows.setdefault(r["fingerprint"], r)
    return list(rows.values())


def _sets_column(text: str, columns: Sequence[str]) -> bool:
    """Whether an UPDATE's SET list names one of ``columns`` (a parent key change fires the RI check)."""
    match = re.search(r"\bSET\b(.*?)(\bWHERE\b|\bFROM\b|\bRETURNING\b|$)", text, re.I | re.S)
    if match is None:
        return False
    assigned = {m.strip('"').lower() for m in re.findall(r'("[^"]+"|\w+)\s*=', match.group(1))}
    return any(c.lower() in assigned for c in columns)


def _resolver(conn: psycopg.Connection) -> Any:
    cache: dict[str, str | None] = {}

    def resolve(name: str) -> str | None:
        if name not in cache:
            try:
                with conn.transaction():
                    row = conn.execute(
                        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                        (name,),
                    ).fetchone()
            except psycopg.Error:
                row = None
            cache[name] = row[0] if row else None
        return cache[name]

    return resolve


def _served(
    fk: ForeignKey, shapes: Sequence[tuple[dict[str, Any], Any]], resolve: Any
) -> list[tuple[ServedQuery, str, bool]]:
    """(statement, text to plan, generic) of each query shape the FK's index serves."""
    out = []
    for row, parsed in shapes:
        tables = [resolve(t) for t in parsed.tables]
        kind = None
        if parsed.statement == "delete" and tables and tables[0] == fk.parent:
            kind = "parent_delete"
        elif (
            parsed.statement == "update"
            and tables
            and tables[0] == fk.parent
            and _sets_column(parsed.normalized, fk.parent_columns)
        ):
            kind = "parent_update"
        elif parsed.statement == "select" and fk.child in tables and fk.parent in tables:
            joined = {
                u.column
                for u in parsed.columns
                if u.role == "join" and u.table and resolve(u.table) == fk.child
            }
            if set(fk.columns) <= joined:
                kind = "join"
        if kind is None:
            continue
        calls = int(row.get("calls") or 0)
        text = row.get("example_query") or row.get("normalized_query") or ""
        generic = re.search(r"\$\d", text) is not None  # pg_stat_statements' $n: a generic plan
        rows_done = row.get("rows")
        per_call = float(rows_done) / calls if rows_done is not None and calls else 1.0
        served = ServedQuery(
            row["fingerprint"],
            kind,
            calls,
            float(row.get("mean_ms") or 0.0),
            parsed.normalized,
            None,
            per_call,
        )
        out.append((served, text, generic))
    return out


def foreign_key_evidence(
    conn: psycopg.Connection,
    fks: Sequence[ForeignKey],
    indexes: Sequence[ExistingIndex],
    settings: ProfilingSettings,
    slow: pl.DataFrame | None = None,
    period: StatisticsPeriod | None = None,
) -> list[ForeignKeyEvidence]:
    """What :func:`~autopilot_pipeline.profiling.foreign_keys.foreign_key_findings` needs, for every
    foreign key no index covers (covered ones cost nothing to skip)."""
    todo = [fk for fk in fks if covering_fk_index(fk, indexes) is None]
    if not todo:
        return []
    period = period or statistics_period(conn)
    tables = {fk.child for fk in todo} | {fk.parent for fk in todo}
    activity = read_table_activity(conn, period, tables)
    shapes = []
    for row in _workload(conn, slow):
        try:
            shapes.append((row, parse_query(row.get("normalized_query") or "")))
        except BadQuery:
            continue
    resolve = _resolver(conn)
    hypo = hypopg_schema(conn)
    out = []
    for fk in todo:
        child, parent = activity.get(fk.child), activity.get(fk.parent) or TableActivity(0.0, 0.0)
        child_rows = child.rows if child else 0.0
        if child_rows < settings.min_table_rows:
            continue  # small children are scanned cheaply: no evidence needed
        width = conn.execute(
            "SELECT coalesce(sum(avg_width), 0) FROM pg_stats WHERE schemaname = %s AND tablename = %s "
            "AND attname = ANY(%s)",
            (fk.schema, fk.table, list(fk.columns)),
        ).fetchone()
        served = _served(fk, shapes, resolve)
        statements = []
        for s, text, generic in served:
            cost = _plan_cost(conn, text, generic) if s.kind != "join" else None
            statements.append(
                ServedQuery(s.fingerprint, s.kind, s.calls, s.mean_ms, s.query, cost, s.rows_per_call)
            )
        check = check_query(fk)
        check_cost = _plan_cost(conn, check, True)
        notes = []
        if hypo and check_cost is not None:
            indexed = hypothetical_cost(
                conn, hypo, IndexCandidate(table=fk.child, columns=fk.columns), check, True
            )
            verification = "hypopg" if indexed is not None else "heuristic"
        else:
            indexed, verification = None, "heuristic"
        if indexed is None:
            indexed = heuristic_indexed_cost(child_rows, parent.rows)
            notes.append("cost with the index is a heuristic (B-tree descent + one page per matching row)")
        out.append(
            ForeignKeyEvidence(
                fk=fk,
                child_rows=child_rows,
                parent_deletes=parent.deletes,
                parent_updates=parent.updates,
                stats_days=period.days,
                child_writes_per_day=(
                    TableWrites.of(child).index_writes_per_day if child and period.days > 0 else None
                ),
                key_width=float(width[0]) if width and width[0] else 8.0 * len(fk.columns),
                statements=tuple(statements),
                check_cost=check_cost,
                indexed_cost=indexed,
                verification=verification,
                notes=tuple(notes),
            )
        )
    return out
