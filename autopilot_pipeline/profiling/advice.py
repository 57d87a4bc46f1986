"""Performance profiling, pure: query fingerprints, index candidates, maintenance rules and the report.

Nothing here touches a database. The edge (:mod:`autopilot_pipeline.profiling.store`) reads catalogs and
statistics, runs EXPLAIN (with HypoPG when present) and hands plain values to these functions.

Why pglast: it is PostgreSQL's own parser (libpg_query) compiled as a C extension, so every statement the
server accepts parses the same way here, and its fingerprint is the one pg_stat_statements-style tools
use: ``WHERE id = 5``, ``WHERE id = 7`` and ``WHERE id = $1`` get one fingerprint, so app-logged queries
(literals) and pg_stat_statements entries (``$n`` parameters) land on the same key. sqlglot parses many
dialects approximately; here one dialect parsed exactly is worth more.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl
from pglast import parser as pg_parser

__all__ = [
    "MAX_QUERY_CHARS",
    "PRIORITIES",
    "BadQuery",
    "ColumnUse",
    "DatabaseStats",
    "ExistingIndex",
    "IndexCandidate",
    "IndexVerdict",
    "ParsedQuery",
    "ProfilingSettings",
    "Recommendation",
    "analyze_threshold",
    "assemble_optimizations",
    "candidate_from_key",
    "choose_index",
    "classify_text",
    "covering_index",
    "diff_statements",
    "empty_query_stats",
    "duplicate_index_findings",
    "fingerprint_queries",
    "index_candidates",
    "index_name",
    "insert_vacuum_threshold",
    "maintenance_findings",
    "mark_new_fingerprints",
    "merge_index_advice",
    "rank_index_advice",
    "combine_query_sources",
    "stale_recommendations",
    "missing_index_findings",
    "parse_query",
    "quote_ident",
    "query_optimization_findings",
    "query_stats",
    "resource_findings",
    "split_table",
    "stable_hash",
    "statements_columns",
    "unused_index_findings",
    "vacuum_threshold",
    "wraparound_findings",
]

#: Longer query texts are skipped (counted as ``too_long``): a 64 KiB statement is generated SQL (a huge IN
#: list, a bulk VALUES), not something an index advisor can reason about, and parsing it costs more than it
#: tells.
MAX_QUERY_CHARS = 65_536
PRIORITIES = ("high", "medium", "low")
_PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}
#: Schemas whose tables never get index advice: the system catalogs and the pipeline's own tables.
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
XID_WRAP_LIMIT = 2**31  # transaction IDs left before wraparound, from a table's relfrozenxid
XID_STOP_MARGIN = 3_000_000  # the server refuses new XIDs this close to the limit


@dataclass(frozen=True)
class ProfilingSettings:
    """Thresholds, each with the reason for its default."""

    slow_ms: float = (
        1000.0  #: a slow query, as the seed's ``slow_queries_summary`` (execution_time_ms >= 1000)
    )
    lookback_hours: float = 24.0  #: query_performance window of a daily run
    analyze_top_n: int = 50  #: fingerprints (by total time) EXPLAINed per run
    min_mean_ms: float = 10.0  #: faster queries are not worth an index
    min_cost: float = 100.0  #: Dexter: ignore queries the planner costs below 100
    min_saving_pct: float = 50.0  #: Dexter: keep an index only if it cuts the query's cost by >= 50 %
    min_table_rows: int = 10_000  #: "large" table: smaller ones are read whole faster than via an index
    max_index_columns: int = 3
    high_saved_ms: float = 10_000.0  #: verified advice saving >= 10 s per window is high priority
    min_dead_tuples: int = 1_000  #: ignore the autovacuum formula on tiny tables (autovacuum handles them)
    stale_vacuum_days: float = 7.0  #: a table over its trigger and not vacuumed for this long is urgent
    unused_min_stats_days: float = 7.0  #: index usage counted for less than this is weak evidence
    cache_hit_min: float = 0.99  #: PgHero/pganalyze: below 99 % the working set does not fit in memory
    cache_min_blocks: int = 10_000  #: below this many block reads + hits the ratio means little
    connections_medium: float = 0.7
    connections_high: float = 0.85
    freeze_age_medium: float = 0.75  #: of autovacuum_freeze_max_age
    freeze_age_high: float = 1.0


# --------------------------------------------------------------------------------------------- parsing


class BadQuery(ValueError):
    """A query text profiling cannot use; ``kind`` is one of empty, too_long, odd_encoding, unparseable."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class ColumnUse:
    """A column a statement filters, joins or sorts on. ``table`` is None when unqualified and ambiguous;
    ``scope`` lists the tables it may belong to (resolved against the catalog by :meth:`ParsedQuery.resolved`)."""

    table: str | None
    column: str
    role: str  # eq | in | null | join | range | order
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedQuery:
    fingerprint: str
    normalized: str
    statement: str  # select | insert | update | delete | merge | utility
    tables: tuple[str, ...]
    columns: tuple[ColumnUse, ...]

    @property
    def explainable(self) -> bool:
        return self.statement in ("select", "update", "delete")

    def resolved(
        self, table_names: Mapping[str, str], columns_of: Mapping[str, Iterable[str]] | None = None
    ) -> ParsedQuery:
        """Qualify table names through ``table_names`` (as written -> schema.table) and give unqualified,
        ambiguous columns the one table in their scope that has them (``columns_of``)."""
        tables = tuple(dict.fromkeys(table_names.get(t, t) for t in self.tables))
        uses = []
        for use in self.columns:
            table = table_names.get(use.table, use.table) if use.table else None
            if table is None and columns_of is not None:
                owners = [table_names.get(t, t) for t in use.scope]
                owners = [t for t in owners if use.column in set(columns_of.get(t, ()))]
                table = owners[0] if len(owners) == 1 else None
            uses.append(replace(use, table=table, scope=()))
        return replace(self, tables=tables, columns=tuple(uses))


# Characters that mark a mangled or deceptive text: C0/C1 controls (other than tab/newline/CR), bidi
# overrides and isolates ("Trojan Source"), zero-width characters, the replacement character, lone
# surrogates, and UTF-8 read as Latin-1 ("JosÃ©").
_ODD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffd\ud800-\udfff]"
)
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]")


def classify_text(text: object) -> str | None:
    """Why ``text`` cannot be profiled (a :class:`BadQuery` kind), or None when it may be parsed."""
    if not isinstance(text, str) or not text.strip():
        return "empty"
    if len(text) > MAX_QUERY_CHARS:
        return "too_long"
    if _ODD_CHARS.search(text) or _MOJIBAKE.search(text):
        return "odd_encoding"
    return None


def _node(wrapper: Any) -> tuple[str, dict]:
    """(type name, fields) of a libpg_query JSON node such as ``{"SelectStmt": {...}}``."""
    if isinstance(wrapper, dict) and len(wrapper) == 1:
        ((kind, body),) = wrapper.items()
        if isinstance(body, dict):
            return kind, body
    return "", wrapper if isinstance(wrapper, dict) else {}


def _qualified(rangevar: dict) -> str:
    name = rangevar.get("relname", "")
    return f"{rangevar['schemaname']}.{name}" if rangevar.get("schemaname") else name


class _Scope:
    """Aliases visible in one SELECT level: alias -> table name, or None for a subquery/CTE/function."""

    def __init__(self, parent: _Scope | None, ctes: frozenset[str]) -> None:
        self.parent = parent
        self.aliases: dict[str, str | None] = {}
        self.ctes = ctes

    def lookup(self, alias: str) -> tuple[bool, str | None]:
        scope: _Scope | None = self
        while scope is not None:
            if alias in scope.aliases:
                return True, scope.aliases[alias]
            scope = scope.parent
        return False, None

    def base_tables(self) -> list[str]:
        return [t for t in dict.fromkeys(self.aliases.values()) if t is not None]


_RANGE_OPS = {"<", ">", "<=", ">="}


class _Extractor:
    """Walks a libpg_query JSON tree collecting base tables and filter/join/sort columns."""

    def __init__(self) -> None:
        self.tables: list[str] = []
        self.uses: list[ColumnUse] = []

    # -- statements
    def statement(self, kind: str, body: dict) -> str:
        if kind == "SelectStmt":
            self.select(body, None, frozenset())
            return "select"
        if kind in ("UpdateStmt", "DeleteStmt"):
            ctes = self.with_clause(body.get("withClause"), None, frozenset())
            scope = _Scope(None, ctes)
            self.range_var(body["relation"], scope)
            for item in body.get("fromClause" if kind == "UpdateStmt" else "usingClause", []) or []:
                self.from_item(item, scope)
            self.predicate(body.get("whereClause"), scope)
            return "update" if kind == "UpdateStmt" else "delete"
        if kind == "InsertStmt":
            rel = body.get("relation") or {}
            self.tables.append(_qualified(rel))
            select = body.get("selectStmt")
            if select:
                self.subquery(select, None, frozenset())
            return "insert"
        if kind == "MergeStmt":
            return "merge"
        return "utility"

    def with_clause(self, clause: dict | None, parent: _Scope | None, ctes: frozenset[str]) -> frozenset[str]:
        if not clause:
            return ctes
        names = set(ctes)
        for cte in clause.get("ctes", []):
            _, body = _node(cte)
            names.add(body.get("ctename", ""))
            self.subquery(body.get("ctequery"), parent, frozenset(names))
        return frozenset(names)

    def subquery(self, wrapper: Any, parent: _Scope | None, ctes: frozenset[str]) -> None:
        kind, body = _node(wrapper)
        if kind == "SelectStmt":
            self.select(body, parent, ctes)
        elif kind in ("UpdateStmt", "DeleteStmt", "InsertStmt"):
            self.statement(kind, body)

    def select(self, body: dict, parent: _Scope | None, ctes: frozenset[str]) -> None:
        if body.get("op", "SETOP_NONE") != "SETOP_NONE":  # UNION/INTERSECT/EXCEPT: each side on its own
            for side in ("larg", "rarg"):
                if body.get(side):
                    self.select(body[side], parent, ctes)
            return
        ctes = self.with_clause(body.get("withClause"), parent, ctes)
        scope = _Scope(parent, ctes)
        for item in body.get("fromClause", []) or []:
            self.from_item(item, scope)
        self.predicate(body.get("whereClause"), scope)
        self.sublinks(body.get("targetList"), scope)
        self.sublinks(body.get("havingClause"), scope)
        sort = body.get("sortClause") or []
        for item in sort:
            _, sortby = _node(item)
            ref = self.column(sortby.get("node"), scope)
            if ref is not None:
                self.add(ref, "order", scope)

    def range_var(self, rangevar: dict, scope: _Scope) -> None:
        name = _qualified(rangevar)
        alias = (rangevar.get("alias") or {}).get("aliasname")
        if not rangevar.get("schemaname") and name in scope.ctes:
            scope.aliases[alias or name] = None
            return
        self.tables.append(name)
        scope.aliases[alias or rangevar.get("relname", name)] = name

    def from_item(self, wrapper: Any, scope: _Scope) -> None:
        kind, body = _node(wrapper)
        if kind == "RangeVar":
            self.range_var(body, scope)
        elif kind == "JoinExpr":
            self.from_item(body.get("larg"), scope)
            self.from_item(body.get("rarg"), scope)
            self.predicate(body.get("quals"), scope)
        elif kind in ("RangeSubselect", "RangeFunction", "RangeTableFunc"):
            alias = (body.get("alias") or {}).get("aliasname")
            if kind == "RangeSubselect":
                self.subquery(body.get("subquery"), scope if body.get("lateral") else None, scope.ctes)
            if alias:
                scope.aliases[alias] = None

    # -- expressions
    def column(self, wrapper: Any, scope: _Scope) -> tuple[str | None, str, tuple[str, ...]] | None:
        """(table or None, column, scope tables) of a plain column reference, else None."""
        kind, body = _node(wrapper)
        if kind != "ColumnRef":
            return None
        fields = [_node(f) for f in body.get("fields", [])]
        if not fields or any(k != "String" for k, _ in fields):
            return None  # t.* or *
        names = [b.get("sval", "") for _, b in fields]
        if len(names) == 1:
            tables = scope.base_tables()
            if len(tables) == 1 and len(scope.aliases) == 1:
                return tables[0], names[0], ()
            return None, names[0], tuple(tables)
        qualifier, column = ".".join(names[:-1]), names[-1]
        found, table = scope.lookup(qualifier) if len(names) == 2 else (False, None)
        if not found:
            found, table = scope.lookup(names[-2])
        if not found or table is None:
            return None
        return table, column, ()

    def add(self, ref: tuple[str | None, str, tuple[str, ...]], role: str, scope: _Scope) -> None:
        table, column, candidates = ref
        self.uses.append(ColumnUse(table, column, role, candidates))

    def refs_in(self, wrapper: Any, scope: _Scope) -> list[tuple[str | None, str, tuple[str, ...]]]:
        """Column references anywhere inside an expression (to tell a join key from a constant)."""
        found = []
        stack = [wrapper]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                kind, body = _node(item)
                if kind == "ColumnRef":
                    ref = self.column(item, scope)
                    if ref is not None:
                        found.append(ref)
                    continue
                if kind == "SubLink":
                    continue
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return found

    def sublinks(self, wrapper: Any, scope: _Scope) -> None:
        stack = [wrapper]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                kind, body = _node(item)
                if kind == "SubLink":
                    self.subquery(body.get("subselect"), scope, scope.ctes)
                    if body.get("testexpr"):
                        stack.append(body["testexpr"])
                    continue
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)

    def predicate(self, wrapper: Any, scope: _Scope) -> None:
        if not wrapper:
            return
        kind, body = _node(wrapper)
        if kind == "BoolExpr":
            if body.get("boolop") == "AND_EXPR":
                for arg in body.get("args", []):
                    self.predicate(arg, scope)
            else:  # OR/NOT: an index on one branch rarely helps; still look inside for subqueries
                self.sublinks(body.get("args"), scope)
            return
        if kind == "NullTest":
            ref = self.column(body.get("arg"), scope)
            if ref is not None and body.get("nulltesttype") == "IS_NULL":
                self.add(ref, "null", scope)
            return
        if kind == "SubLink":
            self.sublinks(wrapper, scope)
            return
        if kind != "A_Expr":
            self.sublinks(wrapper, scope)
            return
        self.sublinks(wrapper, scope)
        op_kind = body.get("kind")
        names = [_node(n)[1].get("sval") for n in body.get("name", [])]
        op = names[-1] if names else None
        left, right = body.get("lexpr"), body.get("rexpr")
        if op_kind == "AEXPR_OP" and op in _RANGE_OPS | {"="}:
            for this, other in ((left, right), (right, left)):
                ref = self.column(this, scope)
                if ref is None:
                    continue
                refs = self.refs_in(other, scope)
                if ref[0] is not None and any(r[0] == ref[0] for r in refs):
                    continue  # a = b within one table: no index lookup helps
                self.add(ref, "range" if op != "=" else "join" if refs else "eq", scope)
        elif op_kind in ("AEXPR_IN", "AEXPR_OP_ANY") and op == "=":
            ref = self.column(left, scope)
            if ref is not None:
                self.add(ref, "in", scope)
        elif op_kind in ("AEXPR_BETWEEN", "AEXPR_BETWEEN_SYM"):
            ref = self.column(left, scope)
            if ref is not None:
                self.add(ref, "range", scope)


def parse_query(text: str) -> ParsedQuery:
    """Fingerprint, normalize and analyze one statement; raises :class:`BadQuery` for unusable text."""
    kind = classify_text(text)
    if kind is not None:
        raise BadQuery(
            kind, "query text is empty" if kind == "empty" else f"query text is {kind.replace('_', ' ')}"
        )
    try:
        tree = json.loads(pg_parser.parse_sql_json(text))
        fingerprint = pg_parser.fingerprint(text)
        normalized = pg_parser.normalize(text)
    except pg_parser.ParseError as exc:
        raise BadQuery("unparseable", str(exc).splitlines()[0][:200]) from None
    except (ValueError, RecursionError, UnicodeError) as exc:
        raise BadQuery("unparseable", f"{type(exc).__name__}: {exc}"[:200]) from None
    statements = tree.get("stmts", [])
    if len(statements) != 1:
        raise BadQuery("unparseable", f"{len(statements)} statements in one text (expected 1)")
    extractor = _Extractor()
    stmt_kind, body = _node(statements[0].get("stmt"))
    statement = extractor.statement(stmt_kind, body)
    return ParsedQuery(
        fingerprint=fingerprint,
        normalized=" ".join(normalized.split()),
        statement=statement,
        tables=tuple(dict.fromkeys(extractor.tables)),
        columns=tuple(dict.fromkeys(extractor.uses)),
    )


def fingerprint_queries(
    frame: pl.DataFrame, text_column: str = "query"
) -> tuple[pl.DataFrame, dict[str, int], dict[str, ParsedQuery]]:
    """Add ``fingerprint`` to ``frame`` (null for unusable texts).

    Returns the frame, bad-text counts by kind, and one parsed query per fingerprint. Each distinct text is
    only screened and fingerprinted (libpg_query's C fingerprint); the full parse and column analysis runs
    once per fingerprint. A text the full parse rejects (several statements) shares its fingerprint only
    with texts of the same statements, so they are all rejected with it.
    """
    by_text: dict[str, str | None] = {}
    bad_kind: dict[str, str] = {}
    parsed: dict[str, ParsedQuery] = {}
    rejected: dict[str, str] = {}
    texts = frame.get_column(text_column)
    for text in texts.unique(maintain_order=True).to_list():
        kind = classify_text(text)
        fingerprint = None
        if kind is None:
            try:
                fingerprint = pg_parser.fingerprint(text)
            except (pg_parser.ParseError, ValueError, RecursionError, UnicodeError):
                kind = "unparseable"
        if fingerprint is not None and fingerprint not in parsed and fingerprint not in rejected:
            try:
                parsed[fingerprint] = parse_query(text)
            except BadQuery as exc:
                rejected[fingerprint] = exc.kind
        if fingerprint is not None and fingerprint in rejected:
            kind, fingerprint = rejected[fingerprint], None
        by_text[text] = fingerprint
        if kind is not None:
            bad_kind[text] = kind
    out = frame.with_columns(
        texts.replace_strict(by_text, default=None, return_dtype=pl.String).alias("fingerprint")
    )
    bad: dict[str, int] = {}
    if bad_kind:
        kinds = texts.filter(out.get_column("fingerprint").is_null()).replace_strict(
            bad_kind, default="empty", return_dtype=pl.String
        )
        bad = {kind: int(n) for kind, n in kinds.value_counts().iter_rows()}
    return out, dict(sorted(bad.items())), parsed


# --------------------------------------------------------------------------------------------- statistics


def query_stats(frame: pl.DataFrame, parsed: Mapping[str, ParsedQuery]) -> pl.DataFrame:
    """Per fingerprint: calls, total/mean/p95/max time, rows, first/last seen and a representative example.

    ``frame`` holds fingerprinted ``query_performance`` rows (query, execution_time_ms, rows_returned,
    logged_at, fingerprint). The example is the call whose time is closest to the fingerprint's median:
    its literals are typical, which matters when it is EXPLAINed.
    """
    rows = frame.filter(pl.col("fingerprint").is_not_null())
    if rows.height == 0:
        return empty_query_stats()
    rows = rows.with_columns(
        (pl.col("execution_time_ms") - pl.col("execution_time_ms").median().over("fingerprint"))
        .abs()
        .alias("_dist")
    )
    stats = (
        rows.sort("_dist", "logged_at", maintain_order=True)
        .group_by("fingerprint", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("calls"),
            pl.col("execution_time_ms").sum().alias("total_ms"),
            pl.col("execution_time_ms").mean().alias("mean_ms"),
            pl.col("execution_time_ms").quantile(0.95, interpolation="linear").alias("p95_ms"),
            pl.col("execution_time_ms").max().alias("max_ms"),
            pl.col("rows_returned").sum().cast(pl.Int64).alias("rows"),
            pl.col("logged_at").min().alias("first_seen_at"),
            pl.col("logged_at").max().alias("last_seen_at"),
            pl.col("query").first().alias("example_query"),
        )
    )
    meta = pl.DataFrame(
        {
            "fingerprint": list(parsed),
            "normalized_query": [q.normalized for q in parsed.values()],
            "statement_type": [q.statement for q in parsed.values()],
            "tables": [",".join(q.tables) for q in parsed.values()],
        },
        schema={
            "fingerprint": pl.String,
            "normalized_query": pl.String,
            "statement_type": pl.String,
            "tables": pl.String,
        },
    )
    return stats.join(meta, on="fingerprint", how="left").sort(
        "total_ms", "fingerprint", descending=[True, False]
    )


def empty_query_stats() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "fingerprint": pl.String,
            "calls": pl.Int64,
            "total_ms": pl.Float64,
            "mean_ms": pl.Float64,
            "p95_ms": pl.Float64,
            "max_ms": pl.Float64,
            "rows": pl.Int64,
            "first_seen_at": pl.Datetime("us", "UTC"),
            "last_seen_at": pl.Datetime("us", "UTC"),
            "example_query": pl.String,
            "normalized_query": pl.String,
            "statement_type": pl.String,
            "tables": pl.String,
        }
    )


def mark_new_fingerprints(
    stats: pl.DataFrame, first_seen: Mapping[str, Any], window_start: Any, slow_ms: float
) -> pl.DataFrame:
    """Flag ``is_slow`` (mean or p95 at or over ``slow_ms``) and ``is_new``: slow, and first seen in this window.

    ``first_seen`` maps fingerprints known before (from earlier runs) to when they were first seen, so a
    re-run of the same window flags the same fingerprints again (idempotent)."""
    known = pl.DataFrame(
        {"fingerprint": list(first_seen), "_known_since": list(first_seen.values())},
        schema={"fingerprint": pl.String, "_known_since": pl.Datetime("us", "UTC")},
    )
    slow = (pl.col("mean_ms") >= slow_ms) | (pl.col("p95_ms").fill_null(0.0) >= slow_ms)
    return (
        stats.join(known, on="fingerprint", how="left")
        .with_columns(
            pl.min_horizontal("_known_since", "first_seen_at").alias("first_seen_at"),
            slow.alias("is_slow"),
        )
        .with_columns(
            (
                pl.col("is_slow")
                & (pl.col("first_seen_at") >= pl.lit(window_start).dt.convert_time_zone("UTC"))
            )
            .fill_null(False)
            .alias("is_new")
        )
        .drop("_known_since")
    )


# pg_stat_statements: canonical name -> the view's column, newest name first. PG 13 renamed total_time to
# total_exec_time (and added planning times); PG 14 added toplevel; PG 17 renamed blk_read_time to
# shared_blk_read_time and added stats_since (when the entry started counting).
_STATEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "userid": ("userid",),
    "dbid": ("dbid",),
    "queryid": ("queryid",),
    "toplevel": ("toplevel",),
    "query": ("query",),
    "calls": ("calls",),
    "total_exec_ms": ("total_exec_time", "total_time"),
    "total_plan_ms": ("total_plan_time",),
    "rows": ("rows",),
    "shared_blks_hit": ("shared_blks_hit",),
    "shared_blks_read": ("shared_blks_read",),
    "blk_read_ms": ("shared_blk_read_time", "blk_read_time"),
    "stats_since": ("stats_since",),
}
_REQUIRED_STATEMENT_COLUMNS = ("userid", "dbid", "queryid", "query", "calls", "total_exec_ms", "rows")


def statements_columns(available: Iterable[str]) -> dict[str, str | None]:
    """Map canonical counter names to this server's pg_stat_statements columns (None: not in this version)."""
    have = set(available)
    mapping = {
        name: next((c for c in options if c in have), None) for name, options in _STATEMENT_COLUMNS.items()
    }
    missing = [name for name in _REQUIRED_STATEMENT_COLUMNS if mapping[name] is None]
    if missing:
        raise ValueError(f"pg_stat_statements lacks {', '.join(missing)} (unsupported version)")
    return mapping


_COUNTERS = (
    "calls",
    "total_exec_ms",
    "total_plan_ms",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "blk_read_ms",
)
_STATEMENT_KEY = ("userid", "dbid", "queryid", "toplevel")


def diff_statements(
    previous: pl.DataFrame | None, current: pl.DataFrame, reset: bool = False
) -> pl.DataFrame:
    """What happened between two pg_stat_statements snapshots (cumulative counters -> per-window deltas).

    An entry counts from zero again after ``pg_stat_statements_reset()`` (``reset``: the view's
    ``stats_reset`` moved), after eviction and re-entry (its ``stats_since`` moved, PG 17+) or whenever its
    counters went down; then its current values are the window's values. Entries with no new calls are
    dropped.
    """
    if previous is None or previous.height == 0 or reset:
        delta = current
    else:
        prev = previous.select(
            *_STATEMENT_KEY, *(pl.col(c).alias(f"_prev_{c}") for c in (*_COUNTERS, "stats_since"))
        )
        joined = current.join(prev, on=list(_STATEMENT_KEY), how="left", nulls_equal=True)
        restarted = (
            pl.col("_prev_calls").is_null()
            | (pl.col("calls") < pl.col("_prev_calls"))
            | (pl.col("total_exec_ms") < pl.col("_prev_total_exec_ms") - 1e-6)
            | (pl.col("stats_since").is_not_null() & (pl.col("stats_since") != pl.col("_prev_stats_since")))
        )
        delta = joined.with_columns(
            pl.when(restarted)
            .then(pl.col(c))
            .otherwise(pl.col(c) - pl.col(f"_prev_{c}").fill_null(0))
            .alias(c)
            for c in _COUNTERS
        ).drop([c for c in joined.columns if c.startswith("_prev_")])
    return delta.filter(pl.col("calls") > 0).with_columns(
        (pl.col("total_exec_ms") / pl.col("calls")).alias("mean_ms")
    )


# --------------------------------------------------------------------------------------------- indexes


@dataclass(frozen=True)
class IndexCandidate:
    """A B-tree index on plain columns of ``table`` (schema-qualified)."""

    table: str
    columns: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"missing_index:{self.table}({','.join(self.columns)})"

    def definition(self, name: str | None = None, concurrently: bool = True) -> str:
        """The CREATE INDEX statement, identifiers quoted (named by :func:`index_name` by default)."""
        how = "CONCURRENTLY " if concurrently else ""
        return f"CREATE INDEX {how}{quote_ident(name or index_name(self))} ON {self._target()}"

    def hypothetical_definition(self) -> str:
        """The unnamed CREATE INDEX that ``hypopg_create_index`` takes."""
        return f"CREATE INDEX ON {self._target()}"

    def _target(self) -> str:
        schema, table = split_table(self.table)
        return (
            f"{quote_ident(schema)}.{quote_ident(table)} ({', '.join(quote_ident(c) for c in self.columns)})"
        )


def candidate_from_key(key: str) -> IndexCandidate:
    """Inverse of :attr:`IndexCandidate.key`."""
    body = key.removeprefix("missing_index:")
    table, _, cols = body.partition("(")
    return IndexCandidate(table, tuple(c for c in cols.rstrip(")").split(",") if c))


def split_table(qualified: str) -> tuple[str, str]:
    schema, _, table = qualified.rpartition(".")
    return schema or "public", table


def quote_ident(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name.upper() not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


_RESERVED_WORDS = (
    "ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC BOTH CASE CAST CHECK COLLATE COLUMN CONSTRAINT CREATE "
    "CURRENT_CATALOG CURRENT_DATE CURRENT_ROLE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DEFAULT DEFERRABLE "
    "DESC DISTINCT DO ELSE END EXCEPT FALSE FETCH FOR FOREIGN FROM GRANT GROUP HAVING IN INITIALLY INTERSECT "
    "INTO LATERAL LEADING LIMIT LOCALTIME LOCALTIMESTAMP NOT NULL OFFSET ON ONLY OR ORDER PLACING PRIMARY "
    "REFERENCES RETURNING SELECT SESSION_USER SOME SYMMETRIC SYSTEM_USER TABLE THEN TO TRAILING TRUE UNION "
    "UNIQUE USER USING VARIADIC WHEN WHERE WINDOW WITH"
)
_RESERVED = frozenset(_RESERVED_WORDS.split())


def index_name(candidate: IndexCandidate) -> str:
    """``<table>_<col>_<col>_idx`` as Postgres names them, shortened with a hash to fit 63 bytes."""
    _, table = split_table(candidate.table)
    name = "_".join((table, *candidate.columns, "idx"))
    if len(name.encode()) <= 63:
        return name
    digest = f"{stable_hash(candidate.key):08x}"
    return f"{name.encode()[:50].decode(errors='ignore')}_{digest}_idx"


def stable_hash(text: str) -> int:
    """FNV-1a (32 bit): stable across processes, unlike ``hash``."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


_EQUALITY_ROLES = ("eq", "in", "join", "null")


def index_candidates(query: ParsedQuery, max_columns: int = 3) -> list[IndexCandidate]:
    """B-tree candidates per table from a (resolved) query, in the spirit of Dexter.

    Single columns for every equality, join, range and first sort column; then the equality columns
    together, equality columns followed by one range column, and equality columns followed by the sort
    columns (``WHERE status = ? ORDER BY created_at LIMIT n``). Columns are never repeated and at most
    ``max_columns`` long.
    """
    by_table: dict[str, dict[str, list[str]]] = {}
    for use in query.columns:
        if use.table is None:
            continue
        roles = by_table.setdefault(use.table, {"eq": [], "range": [], "order": []})
        bucket = "eq" if use.role in _EQUALITY_ROLES else use.role
        if use.column not in roles[bucket]:
            roles[bucket].append(use.column)
    order_tables = {u.table for u in query.columns if u.role == "order"}
    out: list[IndexCandidate] = []
    for table, roles in by_table.items():
        eq = roles["eq"]
        rng = [c for c in roles["range"] if c not in eq]
        order = roles["order"] if order_tables == {table} else []
        shapes: list[tuple[str, ...]] = [(c,) for c in (*eq, *rng, *order[:1])]
        if len(eq) >= 2:
            shapes.append(tuple(eq[:max_columns]))
        if eq and rng:
            shapes.append((*eq[: max_columns - 1], rng[0]))
        if eq and order:
            head = eq[: max_columns - 1]
            shapes.append((*head, *[c for c in order if c not in head][: max_columns - len(head)]))
        for cols in shapes:
            cols = tuple(dict.fromkeys(cols))[:max_columns]
            candidate = IndexCandidate(table, cols)
            if cols and candidate not in out:
                out.append(candidate)
    return out


@dataclass(frozen=True)
class ExistingIndex:
    """An index as read from pg_index (``columns`` holds None for expression columns)."""

    schema: str
    table: str
    name: str
    method: str
    columns: tuple[str | None, ...]
    unique: bool = False
    primary: bool = False
    valid: bool = True
    backs_constraint: bool = False
    predicate: str | None = None
    expressions: str | None = None
    opclasses: tuple[str, ...] = ()
    collations: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    scans: int | None = None
    size_bytes: int = 0
    definition: str = ""

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def qualified_name(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def covering_index(candidate: IndexCandidate, indexes: Iterable[ExistingIndex]) -> ExistingIndex | None:
    """An existing valid, non-partial B-tree whose leading key columns are the candidate's, in order.

    (An index on the same equality columns in another order also serves the query; the planner check —
    HypoPG, or a baseline plan that already uses an index — rejects such candidates.)"""
    width = len(candidate.columns)
    for index in indexes:
        if (
            index.qualified_table == candidate.table
            and index.method == "btree"
            and index.valid
            and index.predicate is None
            and tuple(index.columns[:width]) == candidate.columns
        ):
            return index
    return None


@dataclass(frozen=True)
class IndexVerdict:
    """The planner's answer for one query: cost now, and the best candidate with its cost."""

    fingerprint: str
    base_cost: float
    candidate: IndexCandidate | None
    cost: float | None
    verification: str  # hypopg | heuristic | none
    reason: str

    @property
    def saving_pct(self) -> float:
        if self.candidate is None or self.cost is None or self.base_cost <= 0:
            return 0.0
        return max(0.0, 100.0 * (1.0 - self.cost / self.base_cost))


def choose_index(
    fingerprint: str,
    base_cost: float,
    costs: Mapping[IndexCandidate, float],
    settings: ProfilingSettings,
    verification: str = "hypopg",
) -> IndexVerdict:
    """Dexter's rule: a query costing at least ``min_cost`` keeps its cheapest candidate if that saves at
    least ``min_saving_pct``; among candidates within 1 % of the cheapest, the one with fewest columns."""
    if base_cost < settings.min_cost:
        return IndexVerdict(
            fingerprint,
            base_cost,
            None,
            None,
            verification,
            f"plan cost {base_cost:.0f} < {settings.min_cost:.0f}: too cheap to index",
        )
    if not costs:
        return IndexVerdict(fingerprint, base_cost, None, None, verification, "no index candidate")
    cheapest = min(costs.values())
    near = [c for c, cost in costs.items() if cost <= cheapest * 1.01 + 1e-9]
    best = min(near, key=lambda c: (len(c.columns), costs[c], c.columns))
    verdict = IndexVerdict(fingerprint, base_cost, best, costs[best], verification, "")
    if verdict.saving_pct < settings.min_saving_pct:
        return replace(
            verdict,
            candidate=None,
            cost=None,
            reason=f"best candidate saves {verdict.saving_pct:.0f} % < {settings.min_saving_pct:.0f} %",
        )
    return replace(verdict, reason=f"cost {base_cost:.0f} -> {costs[best]:.0f}")


def merge_index_advice(
    verdicts: Sequence[IndexVerdict],
    refit: Callable[[IndexCandidate, Sequence[IndexVerdict]], Sequence[IndexVerdict] | None] | None = None,
) -> list[IndexVerdict]:
    """Fold a recommended index into a wider one it is the leading prefix of, when the wider one serves its
    queries too: one index instead of two. ``refit(wider, verdicts)`` re-verifies the narrower index's
    queries against the wider index (the planner, with HypoPG) and returns their new verdicts, or None when
    any falls below the saving threshold. Without ``refit`` the prefix rule alone decides."""
    groups: dict[IndexCandidate, list[IndexVerdict]] = {}
    for verdict in verdicts:
        if verdict.candidate is not None:
            groups.setdefault(verdict.candidate, []).append(verdict)
    for narrow in sorted(groups, key=lambda c: (len(c.columns), c.key)):
        for wide in sorted(groups, key=lambda c: (-len(c.columns), c.key)):
            if (
                narrow not in groups
                or wide not in groups
                or wide == narrow
                or wide.table != narrow.table
                or wide.columns[: len(narrow.columns)] != narrow.columns
            ):
                continue
            moved = (
                [replace(v, candidate=wide) for v in groups[narrow]]
                if refit is None
                else refit(wide, groups[narrow])
            )
            if moved is not None:
                groups[wide].extend(moved)
                del groups[narrow]
    unchanged = [v for v in verdicts if v.candidate is None]
    return unchanged + [v for members in groups.values() for v in members]


def rank_index_advice(
    verdicts: Iterable[IndexVerdict], workload: Mapping[str, tuple[int, float]]
) -> list[dict[str, Any]]:
    """Group verdicts by index and rank by estimated time saved: Σ calls × mean time × cost saving.

    ``workload`` maps fingerprint -> (calls, mean ms) in the window. The planner's cost is the proxy for
    time, so "saved" is an estimate, labelled as such wherever it is shown.
    """
    groups: dict[IndexCandidate, list[IndexVerdict]] = {}
    for verdict in verdicts:
        if verdict.candidate is not None:
            groups.setdefault(verdict.candidate, []).append(verdict)
    advice = []
    for candidate, members in groups.items():
        saved = 0.0
        calls = 0
        for v in members:
            n, mean = workload.get(v.fingerprint, (0, 0.0))
            calls += n
            saved += n * mean * v.saving_pct / 100.0
        advice.append(
            {
                "candidate": candidate,
                "fingerprints": sorted(v.fingerprint for v in members),
                "calls": calls,
                "saved_ms": saved,
                "saving_pct": max(v.saving_pct for v in members),
                "base_cost": max(v.base_cost for v in members),
                "cost": min(v.cost or 0.0 for v in members),
                "verification": "hypopg" if all(v.verification == "hypopg" for v in members) else "heuristic",
            }
        )
    return sorted(advice, key=lambda a: (-a["saved_ms"], a["candidate"].key))


def combine_query_sources(stats: pl.DataFrame) -> pl.DataFrame:
    """One row per fingerprint from both sources: pg_stat_statements' counters when it saw the query (the
    server's own, complete measurement), otherwise the app log's; the app log's example when there is one
    (literals EXPLAIN without a generic plan), and its p95."""
    if stats.height == 0:
        return stats.with_columns(pl.lit(None, pl.String).alias("example_source"))
    app = stats.filter(pl.col("source") == "app_log")
    extras = app.select(
        "fingerprint",
        pl.col("example_query").alias("_app_example"),
        pl.col("p95_ms").alias("_app_p95"),
        pl.col("is_new").alias("_app_new"),
        pl.col("is_slow").alias("_app_slow"),
    )
    preferred = (
        stats.with_columns((pl.col("source") == "pg_stat_statements").alias("_pgss"))
        .sort("_pgss", descending=True, maintain_order=True)
        .unique("fingerprint", keep="first", maintain_order=True)
        .drop("_pgss")
    )
    return (
        preferred.join(extras, on="fingerprint", how="left")
        .with_columns(
            pl.when(pl.col("_app_example").is_not_null())
            .then(pl.lit("app_log"))
            .otherwise(pl.col("source"))
            .alias("example_source"),
            pl.coalesce("_app_example", "example_query").alias("example_query"),
            pl.coalesce("p95_ms", "_app_p95").alias("p95_ms"),
            (pl.col("is_new") | pl.col("_app_new").fill_null(False)).alias("is_new"),
            (pl.col("is_slow") | pl.col("_app_slow").fill_null(False)).alias("is_slow"),
        )
        .drop("_app_example", "_app_p95", "_app_new", "_app_slow")
        .sort("total_ms", "fingerprint", descending=[True, False])
    )


def stale_recommendations(
    open_recs: Iterable[Mapping[str, Any]],
    indexes: Sequence[ExistingIndex],
    tables: pl.DataFrame,
) -> tuple[dict[str, str], list[str]]:
    """Open recommendations a run no longer produced: ``({key: resolution}, obsolete keys)``.

    Implemented means the fix is observable: the index now exists (covered), the unused or duplicate index
    is gone, the table was vacuumed/analyzed after the advice was given. Anything else is obsolete (the
    condition went away by itself: the slow query stopped, the cache warmed up) and is removed, so the seed's
    ``WHERE implemented = false`` stays a to-do list.
    """
    names = {f"{ix.schema}.{ix.name}" for ix in indexes}
    last: dict[str, tuple[Any, Any]] = {}
    for t in tables.iter_rows(named=True):
        vac = max(
            (d for d in (t.get("last_vacuum"), t.get("last_autovacuum")) if d is not None), default=None
        )
        ana = max(
            (d for d in (t.get("last_analyze"), t.get("last_autoanalyze")) if d is not None), default=None
        )
        last[f"{t['schema_name']}.{t['table_name']}"] = (vac, ana)
    implemented: dict[str, str] = {}
    obsolete: list[str] = []
    for rec in open_recs:
        key, kind, created = rec["recommendation_key"], rec["recommendation_type"], rec.get("created_at")
        done = False
        if kind == "missing_index":
            done = covering_index(candidate_from_key(key), indexes) is not None
        elif kind in ("unused_index", "duplicate_index"):
            done = key.split(":", 1)[1] not in names
        elif kind in ("vacuum", "analyze", "wraparound") and rec.get("table_name") in last:
            vac, ana = last[rec["table_name"]]
            moment = ana if kind == "analyze" else vac
            done = moment is not None and created is not None and moment >= created
        if done:
            implemented[key] = "implemented"
        else:
            obsolete.append(key)
    return implemented, obsolete


# --------------------------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Recommendation:
    """One row of ``automation.performance_recommendations``; ``key`` is stable across runs."""

    key: str
    type: str
    priority: str
    description: str
    table_name: str | None = None
    action_sql: str | None = None
    impact: str | None = None
    estimated_improvement_pct: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def missing_index_findings(
    advice: Sequence[Mapping[str, Any]], settings: ProfilingSettings
) -> list[Recommendation]:
    """Index advice as recommendations. Planner-verified (HypoPG) advice saving ``high_saved_ms`` or more in
    the window is high priority; heuristic advice is never high, so auto-remediation never applies a guess."""
    out = []
    for rank, item in enumerate(advice, start=1):
        candidate: IndexCandidate = item["candidate"]
        verified = item["verification"] == "hypopg"
        if verified:
            priority = "high" if item["saved_ms"] >= settings.high_saved_ms else "medium"
            how = f"verified with HypoPG (plan cost {item['base_cost']:.0f} -> {item['cost']:.0f})"
        else:
            priority = "medium" if item["saved_ms"] >= settings.high_saved_ms else "low"
            how = "by a heuristic estimate (HypoPG is not installed, so the planner did not verify it)"
        cols = ", ".join(candidate.columns)
        shapes = _plural(len(item["fingerprints"]), "query shape")
        out.append(
            Recommendation(
                key=candidate.key,
                type="missing_index",
                priority=priority,
                table_name=candidate.table,
                description=(
                    f"Index {candidate.table} ({cols}) for {shapes} ({item['calls']} calls): "
                    f"~{math.floor(item['saving_pct'])} % cheaper, {how}"
                ),
                action_sql=candidate.definition() + ";",
                impact=f"Estimated {item['saved_ms'] / 1000:.1f} s less query time per analysis window (rank {rank})",
                estimated_improvement_pct=round(item["saving_pct"], 1),
                metadata={
                    "verification": item["verification"],
                    "index_columns": list(candidate.columns),
                    "index_name": index_name(candidate),
                    "fingerprints": item["fingerprints"],
                    "calls": item["calls"],
                    "estimated_saved_ms": round(item["saved_ms"], 1),
                    "plan_cost_before": round(item["base_cost"], 2),
                    "plan_cost_after": round(item["cost"], 2),
                    "rank": rank,
                },
            )
        )
    return out


def query_optimization_findings(
    slow: pl.DataFrame, advised: set[str], settings: ProfilingSettings
) -> list[Recommendation]:
    """Slow fingerprints no verified index fixes: review the query itself."""
    out = []
    for row in slow.filter(pl.col("is_slow")).iter_rows(named=True):
        if row["fingerprint"] in advised:
            continue
        p95 = row.get("p95_ms")
        high = (p95 or row["mean_ms"]) >= 5 * settings.slow_ms or bool(row.get("is_new"))
        tables = row.get("tables") or ""
        note = row.get("analysis") or "no index helps according to the planner"
        out.append(
            Recommendation(
                key=f"query_optimization:{row['fingerprint']}",
                type="query_optimization",
                priority="high" if high else "medium",
                table_name=tables.split(",")[0] if tables else None,
                description=(
                    f"{'New slow' if row.get('is_new') else 'Slow'} query ({row['calls']} calls, mean "
                    f"{row['mean_ms']:.0f} ms{f', p95 {p95:.0f} ms' if p95 is not None else ''}): "
                    f"{_shorten(row.get('normalized_query') or '', 160)} — {note}"
                ),
                impact=f"{row['total_ms'] / 1000:.1f} s of query time in the window",
                metadata={
                    "fingerprint": row["fingerprint"],
                    "calls": row["calls"],
                    "mean_ms": round(row["mean_ms"], 2),
                    "p95_ms": None if p95 is None else round(p95, 2),
                    "is_new": bool(row.get("is_new")),
                    "source": row.get("source"),
                },
            )
        )
    return out


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def unused_index_findings(
    indexes: Iterable[ExistingIndex],
    stats_age_days: float | None,
    settings: ProfilingSettings,
    exclude: Iterable[str] = (),
) -> list[Recommendation]:
    """Indexes never scanned since statistics began, that enforce nothing (not primary, unique or a
    constraint), plus invalid indexes (left by a failed concurrent build). With less than
    ``unused_min_stats_days`` of statistics the evidence is weak: low priority."""
    skip = set(exclude)
    out = []
    weak = stats_age_days is None or stats_age_days < settings.unused_min_stats_days
    for index in indexes:
        if index.qualified_name in skip or f"{index.schema}.{index.name}" in skip:
            continue
        if not index.valid:
            out.append(
                Recommendation(
                    key=f"unused_index:{index.schema}.{index.name}",
                    type="unused_index",
                    priority="high",
                    table_name=index.qualified_table,
                    description=f"Invalid index {index.schema}.{index.name} (a failed build): it slows writes "
                    "and is never used",
                    action_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {index.qualified_name};",
                    impact=f"Reclaims {_size(index.size_bytes)} and write overhead",
                    metadata={"index": index.name, "invalid": True, "size_bytes": index.size_bytes},
                )
            )
            continue
        if index.scans != 0 or index.primary or index.unique or index.backs_constraint:
            continue
        age = "an unknown period" if stats_age_days is None else f"{stats_age_days:.1f} days"
        out.append(
            Recommendation(
                key=f"unused_index:{index.schema}.{index.name}",
                type="unused_index",
                priority="low" if weak else "medium",
                table_name=index.qualified_table,
                description=f"Index {index.schema}.{index.name} ({_size(index.size_bytes)}) has not been "
                f"scanned in {age} of statistics (check replicas before dropping)",
                action_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {index.qualified_name};",
                impact=f"Reclaims {_size(index.size_bytes)}; cheaper writes",
                metadata={
                    "index": index.name,
                    "size_bytes": index.size_bytes,
                    "stats_age_days": stats_age_days,
                },
            )
        )
    return out


def duplicate_index_findings(indexes: Sequence[ExistingIndex]) -> list[Recommendation]:
    """PgHero's rule: an index whose key columns (with operator classes, collations and ordering) are a
    leading prefix of another's on the same table, with the same predicate and expressions, is redundant —
    unless it enforces uniqueness or a constraint. Of two identical indexes the one enforcing nothing goes."""

    def signature(ix: ExistingIndex) -> list[tuple]:
        n = len(ix.columns)
        pad = ("",) * n
        return list(
            zip(ix.columns, ix.opclasses or pad, ix.collations or pad, ix.options or pad, strict=False)
        )

    out: dict[str, Recommendation] = {}
    for a in indexes:
        if not a.valid or a.primary:
            continue
        for b in indexes:
            if (
                a is b
                or not b.valid
                or (a.qualified_table, a.method, a.predicate, a.expressions)
                != (b.qualified_table, b.method, b.predicate, b.expressions)
            ):
                continue
            sa, sb = signature(a), signature(b)
            same = sa == sb
            prefix = len(sa) < len(sb) and sb[: len(sa)] == sa and a.method == "btree"
            if not (same or prefix):
                continue
            if a.backs_constraint:
                continue  # dropping it would mean dropping the constraint
            if a.unique and not (same and b.unique):
                continue  # the only index enforcing this uniqueness
            if same:
                # of two identical indexes keep the one that enforces more, then the one the planner uses
                # more, then the first name
                rank_a = (a.primary, a.backs_constraint, a.unique, a.scans or 0)
                rank_b = (b.primary, b.backs_constraint, b.unique, b.scans or 0)
                if not (rank_b > rank_a or (rank_b == rank_a and b.name < a.name)):
                    continue
            key = f"duplicate_index:{a.schema}.{a.name}"
            out[key] = Recommendation(
                key=key,
                type="duplicate_index",
                priority="medium",
                table_name=a.qualified_table,
                description=(
                    f"Index {a.schema}.{a.name} ({', '.join(c or 'expr' for c in a.columns)}) is "
                    f"{'identical to' if same else 'a prefix of'} {b.schema}.{b.name} "
                    f"({', '.join(c or 'expr' for c in b.columns)}): drop it"
                ),
                action_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {a.qualified_name};",
                impact=f"Reclaims {_size(a.size_bytes)}; cheaper writes; queries use {b.name}",
                metadata={
                    "index": a.name,
                    "covered_by": b.name,
                    "identical": same,
                    "size_bytes": a.size_bytes,
                },
            )
    return list(out.values())


def _size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def vacuum_threshold(
    reltuples: float, base: float, scale: float, max_threshold: float | None = None
) -> float:
    """Dead tuples at which autovacuum vacuums a table: ``base + scale × reltuples`` (PG 18 caps it at
    ``autovacuum_vacuum_max_threshold`` unless that is -1). ``reltuples`` of -1 (never analyzed) counts as 0."""
    value = base + scale * max(reltuples, 0.0)
    if max_threshold is not None and max_threshold >= 0:
        value = min(value, max_threshold)
    return value


def analyze_threshold(reltuples: float, base: float, scale: float) -> float:
    """Rows modified since the last analyze at which autoanalyze runs."""
    return base + scale * max(reltuples, 0.0)


def insert_vacuum_threshold(reltuples: float, base: float, scale: float) -> float | None:
    """Inserts since the last vacuum at which autovacuum vacuums (PG 13+); None when disabled (base -1)."""
    if base is None or base < 0:
        return None
    return base + scale * max(reltuples, 0.0)


def _days_since(moment: Any, now: Any) -> float | None:
    if moment is None:
        return None
    return (now - moment).total_seconds() / 86400.0


def maintenance_findings(tables: pl.DataFrame, now: Any, settings: ProfilingSettings) -> list[Recommendation]:
    """VACUUM and ANALYZE advice by autovacuum's own trigger formulas, with each table's effective settings.

    ``tables`` has, per table: schema_name, table_name, reltuples, n_live_tup, n_dead_tup,
    n_mod_since_analyze, n_ins_since_vacuum, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
    autovacuum_enabled, vac_threshold, vac_scale, vac_max_threshold, ins_threshold, ins_scale,
    ana_threshold, ana_scale.
    """
    out = []
    for t in tables.iter_rows(named=True):
        name = f"{t['schema_name']}.{t['table_name']}"
        quoted = f"{quote_ident(t['schema_name'])}.{quote_ident(t['table_name'])}"
        reltuples = float(t["reltuples"] if t["reltuples"] is not None else -1)
        dead = int(t["n_dead_tup"] or 0)
        live = int(t["n_live_tup"] or 0)
        enabled = t.get("autovacuum_enabled") is not False
        last_vac = max((d for d in (t["last_vacuum"], t["last_autovacuum"]) if d is not None), default=None)
        last_ana = max((d for d in (t["last_analyze"], t["last_autoanalyze"]) if d is not None), default=None)
        vac_age = _days_since(last_vac, now)
        trigger = vacuum_threshold(reltuples, t["vac_threshold"], t["vac_scale"], t.get("vac_max_threshold"))
        dead_ratio = dead / (live + dead) if live + dead else 0.0
        meta_common = {"reltuples": reltuples, "autovacuum_enabled": enabled}
        if dead > trigger and dead >= settings.min_dead_tuples:
            stale = vac_age is None or vac_age >= settings.stale_vacuum_days
            priority = "high" if (not enabled or dead_ratio >= 0.5 or stale) else "medium"
            why = (
                "autovacuum is disabled for this table"
                if not enabled
                else (
                    "autovacuum has not caught up"
                    + (
                        f" (last vacuum {vac_age:.1f} days ago)"
                        if vac_age is not None
                        else " (never vacuumed)"
                    )
                )
            )
            out.append(
                Recommendation(
                    key=f"vacuum:{name}",
                    type="vacuum",
                    priority=priority,
                    table_name=name,
                    description=f"{name}: {dead:,} dead tuples ({100 * dead_ratio:.0f} %) exceed autovacuum's "
                    f"trigger {trigger:,.0f} (threshold + scale factor × {max(reltuples, 0):,.0f} rows); {why}",
                    action_sql=f"VACUUM (ANALYZE) {quoted};",
                    impact="Reclaims space, keeps index-only scans and plans efficient",
                    estimated_improvement_pct=round(100 * dead_ratio, 1),
                    metadata={
                        **meta_common,
                        "n_dead_tup": dead,
                        "trigger": trigger,
                        "last_vacuum_days": vac_age,
                    },
                )
            )
        else:
            ins_trigger = insert_vacuum_threshold(
                reltuples, t.get("ins_threshold"), t.get("ins_scale") or 0.0
            )
            inserted = int(t.get("n_ins_since_vacuum") or 0)
            if (
                ins_trigger is not None
                and inserted > ins_trigger
                and inserted >= settings.min_dead_tuples
                and (vac_age is None or vac_age >= settings.stale_vacuum_days or not enabled)
            ):
                out.append(
                    Recommendation(
                        key=f"vacuum:{name}",
                        type="vacuum",
                        priority="low",
                        table_name=name,
                        description=f"{name}: {inserted:,} rows inserted since the last vacuum exceed the insert "
                        f"trigger {ins_trigger:,.0f}; a vacuum sets the visibility map for index-only scans",
                        action_sql=f"VACUUM (ANALYZE) {quoted};",
                        impact="Index-only scans and freezing stay cheap",
                        metadata={**meta_common, "n_ins_since_vacuum": inserted, "trigger": ins_trigger},
                    )
                )
        modified = int(t["n_mod_since_analyze"] or 0)
        a_trigger = analyze_threshold(reltuples, t["ana_threshold"], t["ana_scale"])
        never = last_ana is None and live >= settings.min_dead_tuples
        if never or (modified > a_trigger and modified >= settings.min_dead_tuples):
            large = max(reltuples, live) >= settings.min_table_rows
            out.append(
                Recommendation(
                    key=f"analyze:{name}",
                    type="analyze",
                    priority="high" if never and large else "medium",
                    table_name=name,
                    description=(
                        f"{name} has never been analyzed ({live:,} rows): the planner guesses its statistics"
                        if never
                        else f"{name}: {modified:,} rows changed since the last analyze exceed autoanalyze's "
                        f"trigger {a_trigger:,.0f}"
                    ),
                    action_sql=f"ANALYZE {quoted};",
                    impact="Accurate row estimates, better plans",
                    metadata={**meta_common, "n_mod_since_analyze": modified, "trigger": a_trigger},
                )
            )
    return out


def wraparound_findings(
    tables: pl.DataFrame,
    freeze_max_age: float,
    database: Mapping[str, Any] | None,
    settings: ProfilingSettings,
) -> list[Recommendation]:
    """Transaction-ID wraparound risk: a table's age(relfrozenxid) against autovacuum_freeze_max_age, where
    autovacuum forces an anti-wraparound vacuum; and the XIDs left before the server stops (2^31 - 3M)."""
    out = []

    def finding(key: str, name: str | None, age: int, limit: float, action: str | None, what: str) -> None:
        ratio = age / limit if limit else 0.0
        left = XID_WRAP_LIMIT - XID_STOP_MARGIN - age
        if ratio < settings.freeze_age_medium and left > 100_000_000:
            return
        priority = "high" if ratio >= settings.freeze_age_high or left <= 100_000_000 else "medium"
        out.append(
            Recommendation(
                key=key,
                type="wraparound",
                priority=priority,
                table_name=name,
                description=f"{what}: transaction ID age {age:,} is {100 * ratio:.0f} % of "
                f"autovacuum_freeze_max_age ({limit:,.0f}); {max(left, 0):,} XIDs left before the server "
                "stops accepting writes",
                action_sql=action,
                impact="Avoids a forced anti-wraparound vacuum at a bad time, or a write outage",
                metadata={"xid_age": age, "freeze_max_age": limit, "xids_left": left},
            )
        )

    for t in tables.iter_rows(named=True):
        age = t.get("xid_age")
        if age is None:
            continue
        name = f"{t['schema_name']}.{t['table_name']}"
        limit = float(t.get("freeze_max_age") or freeze_max_age)
        quoted = f"{quote_ident(t['schema_name'])}.{quote_ident(t['table_name'])}"
        finding(f"wraparound:{name}", name, int(age), limit, f"VACUUM (FREEZE, ANALYZE) {quoted};", name)
    if database and database.get("xid_age") is not None:
        finding(
            f"wraparound:database:{database['name']}",
            None,
            int(database["xid_age"]),
            freeze_max_age,
            None,
            f"database {database['name']}",
        )
    return out


@dataclass(frozen=True)
class DatabaseStats:
    """Server- and database-level counters for resource advice."""

    name: str
    blks_hit: int
    blks_read: int
    connections: int  # all backends of client connections on the server
    max_connections: int
    reserved_connections: int = 3
    idle_connections: int = 0
    idle_in_transaction: int = 0
    shared_buffers: str = ""
    xid_age: int | None = None


def resource_findings(db: DatabaseStats, settings: ProfilingSettings) -> list[Recommendation]:
    """Cache hit ratio below 99 % (the working set does not fit in memory) and connection pressure."""
    out = []
    total = db.blks_hit + db.blks_read
    if total >= settings.cache_min_blocks:
        ratio = db.blks_hit / total
        if ratio < settings.cache_hit_min:
            out.append(
                Recommendation(
                    key=f"cache:database:{db.name}",
                    type="cache",
                    priority="high" if ratio < 0.95 else "medium",
                    description=f"Cache hit ratio {100 * ratio:.2f} % < {100 * settings.cache_hit_min:.0f} % on "
                    f"database {db.name} ({db.blks_read:,} of {total:,} block reads from disk)",
                    action_sql=None,
                    impact="Scale memory: a larger instance or shared_buffers"
                    + (f" (now {db.shared_buffers})" if db.shared_buffers else "")
                    + ", or add the missing indexes that cause large scans",
                    estimated_improvement_pct=None,
                    metadata={
                        "cache_hit_ratio": round(ratio, 5),
                        "blks_hit": db.blks_hit,
                        "blks_read": db.blks_read,
                    },
                )
            )
    usable = max(db.max_connections - db.reserved_connections, 1)
    pressure = db.connections / usable
    if pressure >= settings.connections_medium:
        idle_note = (
            f"; {db.idle_connections} idle and {db.idle_in_transaction} idle in transaction"
            if db.idle_connections or db.idle_in_transaction
            else ""
        )
        out.append(
            Recommendation(
                key=f"connections:database:{db.name}",
                type="connections",
                priority="high" if pressure >= settings.connections_high else "medium",
                description=f"{db.connections} of {usable} usable connections in use ({100 * pressure:.0f} %)"
                + idle_note,
                action_sql=None,
                impact="Put a pooler in front (PgBouncer/Supavisor, transaction mode) or scale to an instance "
                "with more connections; close idle-in-transaction sessions",
                metadata={
                    "connections": db.connections,
                    "max_connections": db.max_connections,
                    "pressure": round(pressure, 3),
                },
            )
        )
    return out


# --------------------------------------------------------------------------------------------- the report

_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("query_optimization", ("query_optimization",)),
    ("indexing", ("missing_index",)),
    ("index_cleanup", ("unused_index", "duplicate_index")),
    ("maintenance", ("vacuum", "analyze", "wraparound")),
    ("resource_scaling", ("cache", "connections")),
)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def _need(n: int) -> str:
    return "needs" if n == 1 else "need"


def _describe_group(group: str, recs: Sequence[Mapping[str, Any]]) -> tuple[str, str, str]:
    """(description, action, impact) for one optimization group, in the seed's words where it has them."""
    n = len(recs)
    tables = {r.get("table_name") for r in recs if r.get("table_name")}
    if group == "query_optimization":
        return (
            f"Found {_plural(n, 'slow query', 'slow queries')}",
            "Review and optimize slow queries",
            "Improve response times by 30-50%",
        )
    if group == "indexing":
        pcts = [
            r["estimated_improvement_pct"] for r in recs if r.get("estimated_improvement_pct") is not None
        ]
        verified = sum(1 for r in recs if (r.get("metadata") or {}).get("verification") == "hypopg")
        lo, hi = (min(pcts), max(pcts)) if pcts else (50.0, 80.0)
        lo, hi = math.floor(lo), math.floor(hi)
        impact = f"Reduce query time by {lo}-{hi}%" if lo != hi else f"Reduce query time by {lo}%"
        note = f" ({verified} verified by the planner)" if verified else " (heuristic estimates)"
        return (
            f"{_plural(len(tables), 'table')} {_need(len(tables))} indexes: "
            f"{_plural(n, 'index', 'indexes')}{note}",
            "Add recommended indexes",
            impact,
        )
    if group == "index_cleanup":
        unused = sum(1 for r in recs if r["recommendation_type"] == "unused_index")
        dup = n - unused
        parts = [
            p
            for p in (
                unused and _plural(unused, "unused index", "unused indexes"),
                dup and _plural(dup, "duplicate index", "duplicate indexes"),
            )
            if p
        ]
        return (
            f"{' and '.join(parts)}",
            "Drop unused and duplicate indexes (DROP INDEX CONCURRENTLY)",
            "Faster writes and less disk and memory used",
        )
    if group == "maintenance":
        vac = {r.get("table_name") for r in recs if r["recommendation_type"] in ("vacuum", "wraparound")}
        ana = {r.get("table_name") for r in recs if r["recommendation_type"] == "analyze"} - vac
        parts = [
            p
            for p in (
                vac and f"{_plural(len(vac), 'table')} {_need(len(vac))} VACUUM",
                ana and f"{_plural(len(ana), 'table')} {_need(len(ana))} ANALYZE",
            )
            if p
        ]
        return ("; ".join(parts), "Run VACUUM ANALYZE", "Improve query performance and reclaim disk space")
    kinds = sorted({r["recommendation_type"] for r in recs})
    what = " and ".join(
        {"cache": "low cache hit ratio", "connections": "connection pressure"}[k] for k in kinds
    )
    return (
        f"Resource pressure: {what}",
        "Scale resources: memory for the cache, a pooler or a larger instance for connections",
        "Fewer disk reads and connection errors under load",
    )


def assemble_optimizations(recommendations: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The seed's ``optimize_system`` JSON: one optimization per kind of work, highest priority first.

    Each item has the seed's ``type, priority, description, action, impact`` plus ``count`` and ``items``
    (the recommendations behind it: key, table, SQL, estimated improvement) — additions, not renames.
    """
    open_recs = [r for r in recommendations if not r.get("implemented")]
    optimizations = []
    for group, types in _GROUPS:
        recs = [r for r in open_recs if r["recommendation_type"] in types]
        if not recs:
            continue
        recs.sort(
            key=lambda r: (
                _PRIORITY_RANK.get(r["priority"], 9),
                -(r.get("estimated_improvement_pct") or 0),
                r["recommendation_key"],
            )
        )
        description, action, impact = _describe_group(group, recs)
        optimizations.append(
            {
                "type": group,
                "priority": recs[0]["priority"],
                "description": description,
                "action": action,
                "impact": impact,
                "count": len(recs),
                "items": [
                    {
                        "key": r["recommendation_key"],
                        "priority": r["priority"],
                        "table": r.get("table_name"),
                        "description": r["description"],
                        "actionSql": r.get("action_sql"),
                        "estimatedImprovementPct": _finite(r.get("estimated_improvement_pct")),
                    }
                    for r in recs
                ],
            }
        )
    optimizations.sort(key=lambda o: _PRIORITY_RANK[o["priority"]])
    top = optimizations[0]["priority"] if optimizations else None
    impact = {
        "high": "Significant performance improvement expected",
        "medium": "Moderate performance improvement expected",
        "low": "Minor improvements available",
        None: "No optimizations needed: the system is well tuned",
    }[top]
    return {
        "totalOptimizations": len(optimizations),
        "optimizations": optimizations,
        "estimatedImpact": impact,
    }


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 1) if math.isfinite(value) else None
