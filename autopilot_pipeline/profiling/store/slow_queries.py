"""Slow-query analysis: EXPLAIN each slow fingerprint, test index candidates as hypothetical indexes (HypoPG)
or by a heuristic cost when HypoPG is missing, and store the verdicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.postgres.io import copy_frame, read_frame, serialize_writes
from autopilot_pipeline.profiling.indexes import (
    ExistingIndex,
    IndexCandidate,
    IndexVerdict,
    candidate_from_key,
    choose_index,
    combine_query_sources,
    covering_index,
    index_candidates,
    merge_index_advice,
)
from autopilot_pipeline.profiling.parsing import BadQuery, ParsedQuery, parse_query
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.catalog import (
    explain,
    hypopg_schema,
    read_indexes,
    read_only,
    seq_scans,
)
from autopilot_pipeline.profiling.store.index_advice import QueryInput, plan_relations, verified_index_advice
from autopilot_pipeline.profiling.store.statements import IGNORED_SCHEMAS, TS, db_now

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


def hypothetical_cost(
    conn: psycopg.Connection, schema: str, candidate: IndexCandidate, query: str, generic: bool
) -> float | None:
    """The query's plan cost with ``candidate`` as a HypoPG hypothetical index, or None when HypoPG cannot
    model it. Creation, EXPLAIN and reset happen in one transaction, so behind a transaction-mode pooler
    they reach the same backend (hypothetical indexes live in one backend's memory)."""
    try:
        with read_only(conn):
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
    scans = dict(seq_scans(plan))
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
    and that no existing index already covers. With HypoPG the candidates of every kind (plain, expression,
    partial, BRIN) are pooled per table, tried as hypothetical indexes on every query reading the table (a
    large table read through an index too), and one set serving them all is chosen
    (``store.index_advice.verified_index_advice``). Without HypoPG the saving is a labelled heuristic on
    plain B-trees only."""
    settings = settings or ProfilingSettings()
    analyzed_at = db_now(conn)
    combined = combine_query_sources(stats) if stats.height else stats
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
    planned: list[QueryInput] = []
    rows = []
    for row in chosen.iter_rows(named=True):
        fp = row["fingerprint"]
        text = row["example_query"]
        generic = row.get("example_source") == "pg_stat_statements"  # $n parameters, no literals
        try:
            parsed = catalog.resolve_query(parse_query(text))
        except BadQuery as exc:
            rows.append(
                {"fingerprint": fp, "verification": "none", "analysis": f"not analyzable: {exc.reason}"}
            )
            continue
        try:
            with read_only(conn):
                plan = explain(conn, text, generic=generic)
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())[:200]
            rows.append({"fingerprint": fp, "verification": "none", "analysis": f"EXPLAIN failed: {reason}"})
            continue
        base = float(plan["Total Cost"])
        scanned = [
            t
            for t, _ in seq_scans(plan)
            if t.split(".")[0] not in IGNORED_SCHEMAS
            and catalog.reltuples.get(t, 0.0) >= settings.min_table_rows
        ]
        reachable = scanned
        if hypo:  # the planner can also judge a better index on a large table already read through one
            reachable = list(
                dict.fromkeys(
                    [
                        *scanned,
                        *(
                            t
                            for t in plan_relations(plan)
                            if t.split(".")[0] not in IGNORED_SCHEMAS
                            and catalog.reltuples.get(t, 0.0) >= settings.min_table_rows
                        ),
                    ]
                )
            )
        candidates = [
            c
            for c in index_candidates(parsed, settings.max_index_columns)
            if c.table in reachable
            and c.table.split(".")[0] not in IGNORED_SCHEMAS
            and covering_index(c, indexes) is None
        ]
        if hypo:  # decided below, across all queries: candidates of every kind, one set of indexes
            planned.append(QueryInput(fp, text, generic, parsed, base, reachable, candidates))
            verdict = IndexVerdict(fp, base, None, None, "hypopg", "")
        else:
            costs = _heuristic_costs(plan, candidates, catalog, parsed, indexes)
            verdict = choose_index(fp, base, costs, settings, "heuristic")
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
    if hypo:
        decided = {
            v.fingerprint: v
            for v in verified_index_advice(conn, hypo, planned, catalog.resolve_query, indexes, settings)
        }
        verdicts = [
            v
            if v.fingerprint not in decided
            or (
                decided[v.fingerprint].candidate is None and v.reason == "no sequential scan of a large table"
            )
            else decided[v.fingerprint]
            for v in verdicts
        ]
        final = {v.fingerprint: v for v in verdicts}
        for r in rows:
            if r.get("plan_cost") is not None and r["fingerprint"] in final:
                r["analysis"] = final[r["fingerprint"]].reason

    if not hypo:  # the heuristic advice: a prefix folds into a wider recommended index (no planner to ask)
        verdicts = merge_index_advice(verdicts)
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
            pl.lit(analyzed_at).cast(TS).alias("analyzed_at"),
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
        serialize_writes(conn, "automation.slow_queries")
        conn.execute("DELETE FROM automation.slow_queries WHERE target = 'default'")
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
        "plan_cost, index_key, index_cost, saving_pct, verification, analysis FROM automation.slow_queries "
        "WHERE target = 'default'"
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
                candidate_from_key(r["index_key"]),
                r["index_cost"],
                r["verification"],
                r["analysis"] or "",
            )
        )
    return out
