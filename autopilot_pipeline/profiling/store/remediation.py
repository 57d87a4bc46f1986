"""Auto-remediation: build verified high-priority indexes CONCURRENTLY, with an audit trail of every
attempt (dry runs included)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from autopilot_pipeline.profiling.expressions import (
    NotIndexable,
    column_refs,
    deparse,
    matching_paren,
    parse_expression,
)
from autopilot_pipeline.profiling.indexes import (
    IndexCandidate,
    candidate_from_key,
    covering_index,
    index_name,
    is_expression,
    quote_ident,
    split_table,
    stable_hash,
)
from autopilot_pipeline.profiling.parsing import BadQuery, fingerprint_queries, parse_query
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.catalog import explain, hypopg_schema, read_indexes, read_only
from autopilot_pipeline.profiling.store.index_advice import immutability_problem
from autopilot_pipeline.profiling.store.savings import track_applied_indexes
from autopilot_pipeline.profiling.store.slow_queries import hypothetical_cost
from autopilot_pipeline.profiling.store.statements import (
    IGNORED_SCHEMAS,
    collect_query_stats,
    write_query_stats,
)

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
    name = name or index_name(candidate)
    schema, _ = split_table(candidate.table)
    statement = candidate.definition(name)
    if unique:
        statement = statement.replace("CREATE INDEX", "CREATE UNIQUE INDEX", 1)
    qualified = f"{quote_ident(schema)}.{quote_ident(name)}"
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
    schema, _ = split_table(candidate.table)
    name = index_name(candidate)
    taken = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{quote_ident(schema)}.{quote_ident(name)}",)
    ).fetchone()
    if taken and taken[0]:
        name = f"{name[:50]}_{stable_hash(candidate.key + 'x'):08x}"
    return name


def remediate(
    conn: psycopg.Connection,
    *,
    apply: bool,
    actor: str,
    lock_timeout_ms: int = 5_000,
    statement_timeout_ms: int = 0,
    limit: int = 5,
    settings: ProfilingSettings | None = None,
) -> list[dict[str, Any]]:
    """Auto-remediation: the open, high-priority, HypoPG-verified missing-index recommendations.

    Only our own advice is built, whoever wrote the row: the statement is derived again from the structured
    key (never ``action_sql``), the table and columns must exist in the catalog outside the system and pipeline
    schemas, and the saving is verified again with HypoPG on the queries the index serves; a recommendation
    failing any of these is skipped with the reason in the audit.

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
            "WHERE target = 'default' AND recommendation_type = 'missing_index' AND priority = 'high' "
            "AND NOT implemented "
            "AND metadata ->> 'verification' = 'hypopg' "
            "ORDER BY (metadata ->> 'estimated_saved_ms')::float8 DESC NULLS LAST, recommendation_key LIMIT %s",
            (limit,),
        ).fetchall()
        s = settings or ProfilingSettings()
        results = [
            _remediate_one(conn, row, apply, actor, lock_timeout_ms, statement_timeout_ms, s) for row in rows
        ]
        if any(r["result"] == "applied" for r in results):
            _close_window(conn, s)
        return results
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext('autopilot.remediate'))")


def _close_window(conn: psycopg.Connection, settings: ProfilingSettings) -> None:
    """A statistics window ends right after the builds (pg_stat_statements snapshot and catalog look), so
    the next run's window lies wholly after them and measures the realized saving a day sooner."""
    with conn.transaction():
        result = collect_query_stats(conn, settings, store_snapshot=True)
        write_query_stats(conn, result)
        track_applied_indexes(conn, at=result.window_end)


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
    settings: ProfilingSettings,
) -> dict[str, Any]:
    rec_id, key, action_sql, _metadata = row
    mode = "apply" if apply else "dry_run"
    try:
        candidate = candidate_from_key(key)
    except ValueError as exc:
        audit_id = _audit(conn, rec_id, key, "", mode, actor)
        details = {"reason": f"refused: {exc}"}
        _finish(conn, audit_id, "skipped", None, details)
        return {"key": key, "result": "skipped", **details}
    refused = _catalog_problem(conn, candidate, settings) or _saving_problem(
        conn, key, candidate, (_metadata or {}).get("fingerprints") or [], settings
    )
    if refused is not None:
        audit_id = _audit(conn, rec_id, key, candidate.definition(), mode, actor)
        details = {"reason": f"refused: {refused}"}
        _finish(conn, audit_id, "skipped", None, details)
        return {"key": key, "result": "skipped", **details}
    existing = covering_index(candidate, read_indexes(conn))
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
    schema, _ = split_table(candidate.table)
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


def _catalog_problem(
    conn: psycopg.Connection, candidate: IndexCandidate, settings: ProfilingSettings
) -> str | None:
    """Why the index of ``candidate`` must not be built, judged on the catalog, or None."""
    schema, table = split_table(candidate.table)
    if not schema or schema in IGNORED_SCHEMAS or schema.startswith("pg_"):
        return f"{candidate.table} is not an application table"
    if not 0 < len(candidate.columns) <= settings.max_index_columns:
        return f"{len(candidate.columns)} columns (1 to {settings.max_index_columns} allowed)"
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 "
        "AND NOT a.attisdropped",
        (schema, table),
    ).fetchall()
    if not rows:
        return f"no table {candidate.table}"
    if candidate.method not in ("btree", "brin"):
        return f"index method {candidate.method!r} (btree or brin allowed)"
    existing = {r[0] for r in rows}
    named: list[str] = []
    for text in [*candidate.expressions, *([candidate.predicate] if candidate.predicate else [])]:
        problem = _expression_problem(text)
        if problem:
            return problem
        named += _referenced_columns(text)
    missing = [
        c for c in (*[c for c in candidate.columns if not is_expression(c)], *named) if c not in existing
    ]
    if missing:
        return f"no column {', '.join(dict.fromkeys(missing))} in {candidate.table}"
    for text in candidate.expressions:
        problem = immutability_problem(conn, candidate.table, text)
        if problem:
            return f"expression {text}: {problem}"
    return None


def _expression_problem(text: str) -> str | None:
    """An expression or predicate from a key must be exactly what our own closed deparser writes: a column
    expression, nothing that could carry other SQL into the CREATE INDEX statement."""
    try:
        rendered = deparse(parse_expression(text))
    except NotIndexable as exc:
        return f"{text!r} is not an index expression we write: {exc}"
    wrapped = (
        rendered
        if rendered.startswith("(") and matching_paren(rendered, 0) == len(rendered) - 1
        else f"({rendered})"
    )
    if text not in (rendered, wrapped):
        return f"{text!r} is not an index expression we write (expected {wrapped})"
    return None


def _referenced_columns(text: str) -> list[str]:
    return [names[-1] for names in column_refs(parse_expression(text)) if names]


def _served_queries(conn: psycopg.Connection, key: str, fingerprints: list[str]) -> list[tuple[str, bool]]:
    """(text, has $n parameters) of the queries the index is for: the stored slow-query analysis and the
    latest statistics of the recommendation's fingerprints; only single SELECT/UPDATE/DELETE statements."""
    rows = conn.execute(
        "SELECT coalesce(example_query, normalized_query), example_query IS NULL FROM automation.slow_queries "
        "WHERE target = 'default' AND index_key = %s AND coalesce(example_query, normalized_query) IS NOT NULL "
        "UNION SELECT * FROM (SELECT DISTINCT ON (fingerprint) coalesce(example_query, normalized_query), "
        "example_query IS NULL FROM automation.query_stats WHERE target = 'default' AND fingerprint = ANY(%s) "
        "AND coalesce(example_query, normalized_query) IS NOT NULL "
        "ORDER BY fingerprint, example_query IS NULL, window_end DESC) AS latest",
        (key, [str(f) for f in fingerprints]),
    ).fetchall()
    wanted = {str(f) for f in fingerprints}
    if not rows and wanted:  # no stored analysis (e.g. `autopilot optimize --apply`): the app's own log
        logged = conn.execute(
            "SELECT DISTINCT query FROM (SELECT query FROM automation.query_performance "
            "ORDER BY logged_at DESC LIMIT 20000) AS recent"
        ).fetchall()
        fingerprinted, _, _ = fingerprint_queries(
            pl.DataFrame({"query": [r[0] for r in logged]}, schema={"query": pl.String})
        )
        rows = [(text, False) for text in fingerprinted.filter(pl.col("fingerprint").is_in(wanted))["query"]]
    served = []
    for text, generic in rows:
        try:
            if parse_query(text).explainable:
                # pg_stat_statements' examples keep their $n parameters: those need a generic plan
                served.append((text, bool(generic) or re.search(r"\$\d", text) is not None))
        except BadQuery:
            continue
    return served


def _saving_problem(
    conn: psycopg.Connection,
    key: str,
    candidate: IndexCandidate,
    fingerprints: list[str],
    settings: ProfilingSettings,
) -> str | None:
    """Re-verify the saving now, with HypoPG, on the queries the index serves; None if it holds."""
    hypo = hypopg_schema(conn)
    if hypo is None:
        return "HypoPG is not installed, so the saving cannot be verified again"
    queries = _served_queries(conn, key, fingerprints)
    if not queries:
        return "no analysed slow query is served by this index"
    best = 0.0
    for text, generic in queries:
        try:
            with read_only(conn):
                base = float(explain(conn, text, generic=generic)["Total Cost"])
        except psycopg.Error:
            continue
        cost = hypothetical_cost(conn, hypo, candidate, text, generic)
        if cost is not None and base > 0:
            best = max(best, 100.0 * (1.0 - cost / base))
    need = settings.expression_min_saving_pct if candidate.expressions else settings.min_saving_pct
    if best < need:
        return f"the planner now saves {best:.0f} % with it (at least {need:.0f} % needed)"
    return None
