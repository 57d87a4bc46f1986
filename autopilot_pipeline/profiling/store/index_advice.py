"""Index advice beyond plain columns, at the database edge: expression, partial and BRIN candidates checked
against the catalog (IMMUTABLE functions, pg_stats, pg_stat_user_tables), every candidate of a table tried as
a HypoPG hypothetical index on every slow query that scans the table, and the set that serves them all with
the least size and write cost (``index_selection.select_indexes``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.profiling.expressions import (
    NotIndexable,
    node_of,
    parse_expression,
)
from autopilot_pipeline.profiling.index_selection import (
    TUPLE_OVERHEAD,
    ColumnStats,
    TableActivity,
    brin_eligible,
    brin_size,
    btree_size,
    estimated_size,
    index_weight,
    partial_predicate,
    select_indexes,
    value_fraction,
    why_this_type,
    write_overhead,
)
from autopilot_pipeline.profiling.indexes import (
    ExistingIndex,
    IndexCandidate,
    IndexVerdict,
    covering_index,
    is_expression,
    split_table,
)
from autopilot_pipeline.profiling.parsing import BadQuery, ParsedQuery, fingerprint_queries, parse_query
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.catalog import explain, read_only
from autopilot_pipeline.profiling.store.index_usage import (
    StatisticsPeriod,
    read_table_activity,
    statistics_period,
)
from autopilot_pipeline.profiling.store.statements import db_now, read_query_log

# --------------------------------------------------------------------------------------------- hypothetical


@dataclass(frozen=True)
class HypoResult:
    """The plan cost of a query with one hypothetical index, whether the plan uses it, and its size."""

    cost: float
    used: bool
    size_bytes: int | None


def _index_names(plan: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Index Name" in node:
            names.add(str(node["Index Name"]))
        stack.extend(node.get("Plans", []))
    return names


def plan_relations(plan: dict[str, Any]) -> list[str]:
    """schema.table of every relation the plan reads (sequential, index, bitmap scans)."""
    out = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Relation Name" in node:
            out.append(f"{node.get('Schema', 'public')}.{node['Relation Name']}")
        stack.extend(node.get("Plans", []))
    return list(dict.fromkeys(out))


def hypothetical_plan(
    conn: psycopg.Connection, schema: str, candidate: IndexCandidate, query: str, generic: bool
) -> HypoResult | None:
    """Plan ``query`` with ``candidate`` as a HypoPG hypothetical index (B-tree or BRIN, on columns or
    expressions, partial or not). None when HypoPG refuses the index (a type without an operator class, a
    function that is not IMMUTABLE) or EXPLAIN fails. One transaction, so a pooler keeps one backend."""
    hypo = sql.Identifier(schema)
    try:
        with read_only(conn):
            row = conn.execute(
                sql.SQL("SELECT indexrelid, indexname FROM {}.hypopg_create_index(%s)").format(hypo),
                (candidate.hypothetical_definition(),),
            ).fetchone()
            try:
                assert row is not None
                size = conn.execute(
                    sql.SQL("SELECT {}.hypopg_relation_size(%s)").format(hypo), (row[0],)
                ).fetchone()
                with conn.transaction():  # a savepoint: a failed EXPLAIN still lets us reset
                    plan = explain(conn, query, generic=generic)
            finally:
                conn.execute(sql.SQL("SELECT {}.hypopg_reset()").format(hypo))
    except psycopg.Error:
        return None
    return HypoResult(
        float(plan["Total Cost"]), str(row[1]) in _index_names(plan), int(size[0]) if size else None
    )


# --------------------------------------------------------------------------------------------- catalog


_TYPE_OF = (
    "SELECT atttypid FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped"
)


def immutability_problem(conn: psycopg.Connection, table: str, expression: str) -> str | None:
    """Why ``expression`` (over ``table``'s columns) cannot be indexed, or None when every function, cast and
    operator in it is IMMUTABLE (``pg_proc.provolatile = 'i'``).

    A function name is looked up among the visible functions with that many arguments; where an argument is
    a plain column, only overloads taking that column's type count (``date_trunc('day', ts)`` is IMMUTABLE on
    ``timestamp`` and only STABLE on ``timestamptz``). If any overload that may be meant is not IMMUTABLE the
    expression is refused: a conservative reading, and CREATE INDEX itself would refuse the mutable ones."""
    try:
        node = parse_expression(expression)
    except NotIndexable as exc:
        return str(exc)
    try:
        return _node_problem(conn, table, node)
    except psycopg.Error as exc:
        return " ".join(str(exc).split())[:200]


def _column_type(conn: psycopg.Connection, table: str, node: Any) -> int | None:
    kind, body = node_of(node)
    if kind != "ColumnRef":
        return None
    names = [node_of(f)[1].get("sval") for f in body.get("fields", [])]
    row = conn.execute(_TYPE_OF, (table, names[-1])).fetchone()
    return int(row[0]) if row else None


def _node_problem(conn: psycopg.Connection, table: str, node: Any) -> str | None:
    kind, body = node_of(node)
    if kind == "FuncCall":
        names = [node_of(n)[1].get("sval", "") for n in body.get("funcname", [])]
        name = names[-1]
        schema = names[0] if len(names) == 2 else None
        args = body.get("args") or []
        rows = conn.execute(
            "SELECT p.provolatile, p.proargtypes::oid[] FROM pg_proc p WHERE p.proname = %s AND p.pronargs = %s "
            "AND p.prokind = 'f' AND (CASE WHEN %s::text IS NULL THEN pg_function_is_visible(p.oid) "
            "ELSE p.pronamespace = to_regnamespace(%s) END)",
            (name, len(args), schema, schema),
        ).fetchall()
        if not rows:
            return f"no function {name} with {len(args)} argument(s)"
        types = [_column_type(conn, table, a) for a in args]
        matching = [r for r in rows if all(t is None or r[1][i] == t for i, t in enumerate(types))]
        for volatility, _ in matching or rows:
            if volatility != "i":
                return f"{name}() is not IMMUTABLE here ({'STABLE' if volatility == 's' else 'VOLATILE'})"
        for arg in args:
            problem = _node_problem(conn, table, arg)
            if problem:
                return problem
        return None
    if kind == "TypeCast":
        arg = body.get("arg")
        if node_of(arg)[0] == "A_Const":
            return None
        source = _column_type(conn, table, arg)
        target_names = [node_of(n)[1].get("sval", "") for n in (body.get("typeName") or {}).get("names", [])]
        target = conn.execute("SELECT to_regtype(%s)::oid", (".".join(target_names),)).fetchone()
        if source is None or not target or target[0] is None:
            return "a cast of something other than a column"
        if int(target[0]) == source:
            return None
        row = conn.execute(
            "SELECT c.castmethod, p.provolatile FROM pg_cast c LEFT JOIN pg_proc p ON p.oid = c.castfunc "
            "WHERE c.castsource = %s AND c.casttarget = %s",
            (source, int(target[0])),
        ).fetchone()
        if row is None or row[0] == "i" or (row[0] == "f" and row[1] != "i"):
            return f"the cast to {'.'.join(target_names)} is not IMMUTABLE here"
        return None
    if kind == "A_Expr":
        op = node_of((body.get("name") or [{}])[-1])[1].get("sval", "")
        left, right = body.get("lexpr"), body.get("rexpr")
        lt = _column_type(conn, table, left) if left is not None else None
        rt = _column_type(conn, table, right)
        rows = conn.execute(
            "SELECT o.oprleft, o.oprright, p.provolatile FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode "
            "WHERE o.oprname = %s AND pg_operator_is_visible(o.oid)",
            (op,),
        ).fetchall()
        matching = [r for r in rows if (lt is None or r[0] == lt) and (rt is None or r[1] == rt)]
        if not (matching or rows) or any(r[2] != "i" for r in matching or rows):
            return f"operator {op} is not IMMUTABLE for these types"
        for side in (left, right):
            if side is not None:
                problem = _node_problem(conn, table, side)
                if problem:
                    return problem
        return None
    if kind in ("ColumnRef", "A_Const"):
        return None
    return f"{kind} in an index expression"


def read_column_stats(conn: psycopg.Connection, table: str) -> dict[str, ColumnStats]:
    """``pg_stats`` of a table's columns (empty when it was never analyzed)."""
    schema, name = split_table(table)
    rows = conn.execute(
        "SELECT attname, null_frac, n_distinct, most_common_vals::text::text[], most_common_freqs, correlation, "
        "avg_width FROM pg_stats WHERE schemaname = %s AND tablename = %s",
        (schema, name),
    ).fetchall()
    out = {}
    for column, null_frac, n_distinct, values, freqs, correlation, width in rows:
        common = dict(zip(values or [], [float(f) for f in freqs or []], strict=False))
        out[column] = ColumnStats(
            float(null_frac or 0.0),
            float(n_distinct or 0.0),
            common,
            None if correlation is None else float(correlation),
            int(width or 8),
        )
    return out


def logged_values(
    conn: psycopg.Connection,
    fingerprints: Iterable[str],
    resolve: Any,
    settings: ProfilingSettings,
    per_shape: int = 200,
) -> dict[str, dict[tuple[str, str], list[str]]]:
    """For each fingerprint, the constants its logged calls (the app log, with literals) compared each column
    with: ``{fp: {(table, column): [value, …]}}``. pg_stat_statements replaces literals with ``$n``, so the
    app log is where they are. At most ``per_shape`` distinct texts are parsed per shape."""
    wanted = set(fingerprints)
    if not wanted:
        return {}
    end = db_now(conn)
    log = read_query_log(conn, end - timedelta(hours=settings.lookback_hours), end)
    if log.height == 0:
        return {}
    texts = log.select("query").unique(maintain_order=True)
    fingerprinted, _, _ = fingerprint_queries(texts)
    out: dict[str, dict[tuple[str, str], list[str]]] = {}
    counts: dict[str, int] = {}
    for text, fp in fingerprinted.filter(pl.col("fingerprint").is_in(list(wanted))).iter_rows():
        if counts.get(fp, 0) >= per_shape:
            continue
        counts[fp] = counts.get(fp, 0) + 1
        try:
            parsed = resolve(parse_query(text))
        except BadQuery:
            continue
        seen = out.setdefault(fp, {})
        keys = {(u.table, u.column) for u in parsed.columns if u.table and u.role in ("eq", "in", "null")}
        found = {(v.table, v.column): v.value for v in parsed.values if v.table}
        for key in keys:
            seen.setdefault(key, []).append(found.get(key, "?"))  # "?": compared with no constant this time
    return out


# --------------------------------------------------------------------------------------------- advice


@dataclass
class QueryInput:
    """One analyzed query: its text as EXPLAINed, the plan's cost, the large tables it scans, its plain
    candidates (already filtered against existing indexes)."""

    fingerprint: str
    text: str
    generic: bool
    parsed: ParsedQuery
    base_cost: float
    scanned: list[str]
    plain: list[IndexCandidate]


@dataclass
class AdviceContext:
    """Catalog facts looked up once per run."""

    stats: dict[str, dict[str, ColumnStats]] = field(default_factory=dict)
    activity: dict[str, TableActivity | None] = field(default_factory=dict)
    immutable: dict[tuple[str, str], str | None] = field(default_factory=dict)
    period: StatisticsPeriod | None = None  # the counters' period, read with the first table

    def load(self, conn: psycopg.Connection, table: str) -> None:
        if table not in self.stats:
            self.period = self.period or statistics_period(conn)
            self.stats[table] = read_column_stats(conn, table)
            self.activity[table] = read_table_activity(conn, self.period, [table]).get(table)


def _kind_candidates(
    conn: psycopg.Connection,
    q: QueryInput,
    values: Mapping[tuple[str, str], list[str]],
    ctx: AdviceContext,
    settings: ProfilingSettings,
) -> list[IndexCandidate]:
    out: list[IndexCandidate] = []
    for use in q.parsed.expressions:
        if use.table not in q.scanned:
            continue
        key = (use.table, use.expression)
        if key not in ctx.immutable:
            ctx.immutable[key] = immutability_problem(conn, use.table, use.expression)
        if ctx.immutable[key] is not None:
            continue
        out.append(IndexCandidate(use.table, (use.expression,)))
        if use.role == "eq":  # with the query's equality columns of that table: (tenant_id, (lower(email)))
            eq = [u.column for u in q.parsed.columns if u.table == use.table and u.role in ("eq", "in")]
            eq = list(dict.fromkeys(eq))[: max(settings.max_index_columns - 1, 0)]
            if eq:
                out.append(IndexCandidate(use.table, (*eq, use.expression)))
    for (table, column), seen in values.items():
        if table not in q.scanned:
            continue
        ctx.load(conn, table)
        activity = ctx.activity[table]
        found = partial_predicate(
            column, seen, ctx.stats[table].get(column), activity.rows if activity else 0.0, settings
        )
        if found is None:
            continue
        predicate, _ = found
        for plain in [c for c in q.plain if c.table == table and column in c.columns] or [
            IndexCandidate(table, (column,))
        ]:
            items = tuple(c for c in plain.columns if c != column) or (column,)
            out.append(IndexCandidate(table, items, predicate=predicate))
    for use in q.parsed.columns:
        if use.role != "range" or use.table not in q.scanned:
            continue
        ctx.load(conn, use.table)
        if brin_eligible(ctx.activity[use.table], ctx.stats[use.table].get(use.column), settings):
            out.append(IndexCandidate(use.table, (use.column,), "brin"))
    return list(dict.fromkeys(out))


def verified_index_advice(
    conn: psycopg.Connection,
    hypo: str,
    queries: Sequence[QueryInput],
    resolve: Any,
    indexes: Sequence[ExistingIndex],
    settings: ProfilingSettings,
) -> list[IndexVerdict]:
    """HypoPG verdicts for ``queries``: candidates of every kind pooled per table, each tried on every query
    that scans the table, and the cheapest set that serves them all (``select_indexes``)."""
    ctx = AdviceContext()
    values = logged_values(conn, [q.fingerprint for q in queries if q.scanned], resolve, settings)
    pool: dict[str, list[IndexCandidate]] = {}
    for q in queries:
        seen = values.get(q.fingerprint)
        if not seen:  # no logged literals: only what the text itself keeps (IS NULL survives normalization)
            seen = {(v.table, v.column): [v.value] for v in q.parsed.values if v.table and v.value == "NULL"}
        for c in [*q.plain, *_kind_candidates(conn, q, seen, ctx, settings)]:
            if covering_index(c, indexes) is None and c not in pool.setdefault(c.table, []):
                pool[c.table].append(c)
    options: dict[str, dict[IndexCandidate, float]] = {}
    sizes: dict[IndexCandidate, int | None] = {}
    for q in queries:
        costs: dict[IndexCandidate, float] = {}
        for table in dict.fromkeys(q.scanned):
            for c in pool.get(table, [])[: settings.max_candidates_per_table]:
                result = hypothetical_plan(conn, hypo, c, q.text, q.generic)
                if result is None:
                    continue
                sizes.setdefault(c, result.size_bytes)
                if result.used and result.cost < q.base_cost:
                    costs[c] = result.cost
        options[q.fingerprint] = costs
    weights = {c: _weight(conn, c, size, ctx) for c, size in sizes.items()}
    base = {q.fingerprint: q.base_cost for q in queries}
    choices = select_indexes(options, base, weights, settings)
    verdicts = []
    for q in queries:
        choice = choices.get(q.fingerprint)
        if q.base_cost < settings.min_cost:
            reason = f"plan cost {q.base_cost:.0f} < {settings.min_cost:.0f}: too cheap to index"
            verdicts.append(IndexVerdict(q.fingerprint, q.base_cost, None, None, "hypopg", reason))
        elif choice is None:
            costs = options.get(q.fingerprint, {})
            best = min(costs.values(), default=None)
            reason = (
                "no index candidate"
                if best is None
                else f"best candidate saves {100 * (1 - best / q.base_cost):.0f} % < {settings.min_saving_pct:.0f} %"
            )
            refused = [
                f"{e.expression} cannot be indexed: {ctx.immutable[(e.table, e.expression)]}"
                for e in q.parsed.expressions
                if e.table and ctx.immutable.get((e.table, e.expression))
            ]
            if refused:
                reason += "; " + "; ".join(dict.fromkeys(refused))
            verdicts.append(IndexVerdict(q.fingerprint, q.base_cost, None, None, "hypopg", reason))
        else:
            users = sum(1 for other in choices.values() if other.candidate == choice.candidate)
            shared = " (shared index)" if users > 1 else ""
            reason = f"cost {q.base_cost:.0f} -> {choice.cost:.0f}{shared}"
            verdicts.append(
                IndexVerdict(q.fingerprint, q.base_cost, choice.candidate, choice.cost, "hypopg", reason)
            )
    return verdicts


def _weight(conn: psycopg.Connection, c: IndexCandidate, size: int | None, ctx: AdviceContext) -> float:
    ctx.load(conn, c.table)
    stats, activity = ctx.stats[c.table], ctx.activity[c.table]
    widths = {name: s.avg_width for name, s in stats.items()}
    fraction = _predicate_fraction(c, stats, activity)
    if size is None:
        size = estimated_size(c, activity, widths, fraction) or 0
    entry = TUPLE_OVERHEAD + sum(widths.get(x, 8) for x in c.columns if not is_expression(x))
    return index_weight(size, write_overhead(c, activity, fraction), entry)


def _predicate_fraction(
    c: IndexCandidate, stats: Mapping[str, ColumnStats], activity: TableActivity | None
) -> float:
    """The share of rows a partial candidate's predicate (``col = v`` / ``col IS NULL``) keeps; 1 otherwise."""
    if not c.predicate:
        return 1.0
    try:
        kind, body = node_of(parse_expression(c.predicate))
    except NotIndexable:
        return 1.0
    if kind == "NullTest":
        column = [node_of(f)[1].get("sval") for f in node_of(body.get("arg"))[1].get("fields", [])][-1:]
        s = stats.get(column[0]) if column else None
        return s.null_frac if s else 1.0
    if kind != "A_Expr":
        return 1.0
    fields = node_of(body.get("lexpr"))[1].get("fields", [])
    column = node_of(fields[-1])[1].get("sval") if fields else None
    s = stats.get(column or "")
    const = c.predicate[c.predicate.index("=") + 1 :].strip().rstrip(")").strip()
    share = value_fraction(s, const, activity.rows if activity else 0.0) if s else None
    return 1.0 if share is None else share


# --------------------------------------------------------------------------------------------- details


def index_details(
    conn: psycopg.Connection,
    candidate: IndexCandidate,
    fingerprints: Sequence[str],
    texts: Mapping[str, str],
    indexes: Sequence[ExistingIndex] = (),
    settings: ProfilingSettings | None = None,
) -> dict[str, Any]:
    """What a recommendation states beside its saving: the queries it serves, its estimated size, the index
    writes it adds to its table per day, why this kind of index, and for a time column that suits BRIN the
    other kind with both sizes."""
    ctx = AdviceContext()
    ctx.load(conn, candidate.table)
    stats, activity = ctx.stats[candidate.table], ctx.activity[candidate.table]
    widths = {name: s.avg_width for name, s in stats.items()}
    fraction = _predicate_fraction(candidate, stats, activity)
    size = estimated_size(candidate, activity, widths, fraction)
    writes = write_overhead(candidate, activity, fraction)
    first = candidate.columns[0] if candidate.columns else ""
    column_stats = stats.get(first) if not is_expression(first) else None
    settings = settings or ProfilingSettings()
    roles = _roles(candidate, [texts.get(fp, "") for fp in fingerprints]).get(first, set())
    point = bool(roles & {"eq", "in", "join", "null", "order"})
    details: dict[str, Any] = {
        "index_type": candidate.kind,
        "queries": [{"fingerprint": fp, "query": _short(texts.get(fp, ""), 160)} for fp in fingerprints],
        "estimated_size_bytes": size,
        "index_writes_per_day": round(writes, 1),
        "table_writes_per_day": round(activity.index_writes_per_day, 1) if activity else None,
        "why": why_this_type(
            candidate,
            fraction if candidate.predicate else None,
            column_stats.correlation if column_stats else None,
            point and brin_eligible(activity, column_stats, settings),
        ),
    }
    superseded = [
        f"{ix.schema}.{ix.name}"
        for ix in indexes
        if ix.qualified_table == candidate.table
        and ix.method == candidate.method == "btree"
        and ix.valid
        and not (ix.primary or ix.unique or ix.backs_constraint)
        and ix.predicate is None
        and candidate.predicate is None
        and 0 < len(ix.columns) < len(candidate.columns)
        and tuple(ix.columns) == candidate.columns[: len(ix.columns)]
    ]
    if superseded:  # the new index makes these redundant (a leading prefix of it): drop them after building
        details["supersedes"] = superseded
    if candidate.predicate:
        details["predicate_fraction"] = round(fraction, 6)
        details["full_index_size_bytes"] = estimated_size(
            IndexCandidate(candidate.table, candidate.columns), activity, widths
        )
    if activity is not None and column_stats is not None and brin_eligible(activity, column_stats, settings):
        brin = brin_size(activity.pages, column_stats.avg_width)
        btree = btree_size(activity.rows, [column_stats.avg_width])
        if candidate.method == "brin":
            details["btree_alternative"] = {
                "definition": IndexCandidate(candidate.table, (first,)).definition(),
                "estimated_size_bytes": btree,
                "note": "a B-tree is the better choice for point lookups, ORDER BY … LIMIT and very narrow "
                f"ranges; this BRIN index is about {max(btree // max(brin, 1), 1):,}x smaller",
            }
        elif candidate.plain and len(candidate.columns) == 1:
            details["brin_alternative"] = {
                "definition": IndexCandidate(candidate.table, (first,), "brin").definition(),
                "estimated_size_bytes": brin,
                "note": (
                    "the B-tree stays the better choice: these queries are point lookups or sorted reads"
                    if point
                    else "the planner prefers the B-tree for these ranges; the BRIN index is "
                    f"{max(btree // max(brin, 1), 1):,}x smaller and nearly free to maintain, "
                    "and suits wide range scans"
                ),
            }
    return details


def _roles(candidate: IndexCandidate, texts: Iterable[str]) -> dict[str, set[str]]:
    """How the served queries use each column of the candidate's table (eq, range, order, …)."""
    _, bare = split_table(candidate.table)
    out: dict[str, set[str]] = {}
    for text in texts:
        try:
            parsed = parse_query(text)
        except BadQuery:
            continue
        for use in parsed.columns:
            if use.table in (candidate.table, bare) or (use.table is None and len(parsed.tables) == 1):
                out.setdefault(use.column, set()).add(use.role)
    return out


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
