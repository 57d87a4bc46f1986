"""Realized savings at the database edge: a row per index applied since the previous profiling run (by
auto-remediation or by hand), the queries it serves, and their pg_stat_statements windows before and after
it (``automation.query_stats``), measured against the predicted saving."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from autopilot_pipeline.profiling.indexes import ExistingIndex, candidate_from_key, covering_index
from autopilot_pipeline.profiling.savings import realized_saving
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.catalog import explain, read_indexes, read_only
from autopilot_pipeline.profiling.store.index_usage import CatalogIndex, IndexObservation, observe_indexes

#: Applied indexes are re-measured for this long (more calls after make the number firmer).
MEASURE_DAYS = 30
#: Query shapes on the index's table EXPLAINed to find those it serves when no advice names them.
PLAN_PROBES = 20


def _linked_recommendation(
    conn: psycopg.Connection, ix: CatalogIndex, existing: ExistingIndex | None, key: str | None
) -> dict[str, Any] | None:
    """The index advice this index implements: the audited key, else a missing-index recommendation (open
    or implemented) whose candidate the index covers."""
    rows = conn.execute(
        "SELECT recommendation_key, estimated_improvement_pct, metadata FROM automation.performance_recommendations "
        "WHERE target = 'default' AND recommendation_type = 'missing_index' "
        "AND (recommendation_key = %s OR table_name = %s) "
        "ORDER BY recommendation_key = %s DESC, updated_at DESC",
        (key, ix.table, key),
    ).fetchall()
    for rec_key, pct, metadata in rows:
        if rec_key == key:
            return {"key": rec_key, "pct": pct, "metadata": metadata or {}}
        if existing is None:
            continue
        try:
            candidate = candidate_from_key(rec_key)
        except (ValueError, IndexError):
            continue
        width = len(candidate.columns)
        same_set = (metadata or {}).get("reason") == "foreign_key" and set(existing.columns[:width]) == set(
            candidate.columns
        )
        if same_set or covering_index(candidate, [existing]) is not None:
            return {"key": rec_key, "pct": pct, "metadata": metadata or {}}
    return None


def _plans_using(conn: psycopg.Connection, ix: CatalogIndex) -> list[str]:
    """Fingerprints of the latest windows' query shapes on the index's table whose plan now uses it."""
    table = ix.table.split(".", 1)[1]
    rows = conn.execute(
        "SELECT DISTINCT ON (fingerprint) fingerprint, coalesce(example_query, normalized_query), total_ms "
        "FROM automation.query_stats WHERE target = 'default' AND statement_type IN ('select', 'update', 'delete') "
        "AND (',' || tables || ',') ~ %s ORDER BY fingerprint, window_end DESC",
        (rf",([^,]*\.)?{re.escape(table)},",),
    ).fetchall()
    rows = sorted(rows, key=lambda r: -(r[2] or 0.0))[:PLAN_PROBES]
    out = []
    for fp, text, _ in rows:
        try:
            with read_only(conn):
                plan = explain(conn, text, generic="$" in text)
        except psycopg.Error:
            continue
        stack = [plan]
        while stack:
            node = stack.pop()
            if node.get("Index Name") == ix.name:
                out.append(fp)
                break
            stack.extend(node.get("Plans", []))
    return out


def record_new_indexes(conn: psycopg.Connection, observation: IndexObservation) -> int:
    """A realized-savings row for each index new in ``observation``: when it appeared (the audited build,
    else between the previous run and this one), which advice it implements and which queries it serves."""
    if not observation.new:
        return 0
    existing = {f"{ix.schema}.{ix.name}": ix for ix in read_indexes(conn)}
    written = 0
    for ix in observation.new:
        audit = conn.execute(
            "SELECT recommendation_key, started_at, finished_at FROM automation.remediation_audit "
            "WHERE result = 'applied' AND details ->> 'index' = %s ORDER BY id DESC LIMIT 1",
            (ix.qualified,),
        ).fetchone()
        if audit is not None:
            source, key, after, before = "auto_apply", audit[0], audit[1], audit[2] or observation.observed_at
        else:
            source, key = "manual", None
            after, before = observation.previous_at or observation.observed_at, observation.observed_at
        rec = _linked_recommendation(conn, ix, existing.get(ix.qualified), key)
        metadata = rec["metadata"] if rec else {}
        fingerprints = [str(f) for f in metadata.get("fingerprints") or []] or _plans_using(conn, ix)
        predicted = metadata.get("estimated_saved_ms")
        cur = conn.execute(
            """
            INSERT INTO automation.realized_savings (schema_name, index_name, index_oid, table_name, definition,
                source, recommendation_key, applied_after, applied_before, fingerprints, predicted_saved_ms,
                predicted_saving_pct, status)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (schema_name, index_name, index_oid) DO NOTHING
            """,
            (
                ix.schema,
                ix.name,
                ix.oid,
                ix.table,
                ix.definition,
                source,
                rec["key"] if rec else key,
                after,
                before,
                fingerprints,
                predicted,
                rec["pct"] if rec else None,
                "measuring" if fingerprints else "no_queries",
            ),
        )
        written += cur.rowcount
    return written


def _windows(conn: psycopg.Connection, fingerprints: Sequence[str], where: str, args: tuple) -> dict:
    rows = conn.execute(
        sql.SQL(
            "SELECT fingerprint, sum(calls)::bigint, sum(total_ms) FROM automation.query_stats "
            "WHERE target = 'default' AND source = 'pg_stat_statements' AND fingerprint = ANY(%s) AND {} "
            "GROUP BY fingerprint"
        ).format(sql.SQL(where)),  # type: ignore[arg-type]  # one of the two fixed conditions below
        (list(fingerprints), *args),
    ).fetchall()
    return {r[0]: (int(r[1]), float(r[2])) for r in rows}


def measure_realized_savings(conn: psycopg.Connection, settings: ProfilingSettings | None = None) -> int:
    """Re-measure the indexes applied in the last ``MEASURE_DAYS`` days from the stored pg_stat_statements
    windows: "before" are windows that ended before the index could exist (up to
    ``realized_baseline_days`` back), "after" those that began once it existed; a window spanning the
    build is neither."""
    settings = settings or ProfilingSettings()
    rows = conn.execute(
        "SELECT id, fingerprints, applied_after, applied_before FROM automation.realized_savings "
        "WHERE detected_at > now() - make_interval(days => %s) AND cardinality(fingerprints) > 0",
        (MEASURE_DAYS,),
    ).fetchall()
    for rec_id, fingerprints, applied_after, applied_before in rows:
        before = _windows(
            conn,
            fingerprints,
            "window_end <= %s AND window_end > %s",
            (applied_after, applied_after - timedelta(days=settings.realized_baseline_days)),
        )
        after = _windows(conn, fingerprints, "window_start >= %s", (applied_before,))
        r = realized_saving(before, after, settings.realized_min_calls)
        conn.execute(
            """
            UPDATE automation.realized_savings SET status = %s, calls_before = %s, mean_ms_before = %s,
                calls_after = %s, mean_ms_after = %s, realized_saved_ms = %s, realized_saving_pct = %s,
                queries = %s, measured_at = now() WHERE id = %s
            """,
            (
                r.status,
                r.calls_before,
                r.mean_ms_before,
                r.calls_after,
                r.mean_ms_after,
                r.saved_ms,
                r.saving_pct,
                Jsonb(r.queries),
                rec_id,
            ),
        )
    return len(rows)


_COLUMNS = (
    "schema_name",
    "index_name",
    "table_name",
    "definition",
    "source",
    "recommendation_key",
    "applied_after",
    "applied_before",
    "fingerprints",
    "predicted_saved_ms",
    "predicted_saving_pct",
    "calls_before",
    "mean_ms_before",
    "calls_after",
    "mean_ms_after",
    "realized_saved_ms",
    "realized_saving_pct",
    "status",
    "queries",
    "detected_at",
    "measured_at",
)


def read_realized_savings(conn: psycopg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The most recently applied indexes first."""
    rows = conn.execute(
        sql.SQL(
            "SELECT {} FROM automation.realized_savings ORDER BY applied_before DESC, id DESC LIMIT %s"
        ).format(sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS)),
        (limit,),
    ).fetchall()
    return [dict(zip(_COLUMNS, r, strict=True)) for r in rows]


def track_applied_indexes(conn: psycopg.Connection, at: Any = None) -> IndexObservation:
    """One profiling run's look at the catalog (at its pg_stat_statements snapshot ``at``): store it and
    open a realized-savings row for every index that appeared since the previous look."""
    observation = observe_indexes(conn, at=at)
    record_new_indexes(conn, observation)
    return observation
