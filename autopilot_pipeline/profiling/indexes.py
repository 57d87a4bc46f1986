"""Index candidates from parsed queries, the choice among hypothetical indexes, and the merge and ranking of index advice. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from autopilot_pipeline.profiling.expressions import (
    NotIndexable,
    column_refs,
    matching_paren,
    node_of,
    normalize,
    parse_expression,
    split_top_level,
)
from autopilot_pipeline.profiling.parsing import ParsedQuery
from autopilot_pipeline.profiling.settings import ProfilingSettings

# --------------------------------------------------------------------------------------------- indexes


@dataclass(frozen=True)
class IndexCandidate:
    """An index on ``table`` (schema-qualified): ``method`` btree or brin; ``columns`` holds its key items in
    order, each a plain column name or an expression in parentheses (``(lower(email))``, written by
    :func:`~autopilot_pipeline.profiling.expressions.deparse`); ``predicate`` makes it partial."""

    table: str
    columns: tuple[str, ...]
    method: str = "btree"
    predicate: str | None = None

    @property
    def key(self) -> str:
        """``missing_index:schema.table(a,b)`` for a plain B-tree (the original format), with `` USING brin``
        before the parenthesis and `` WHERE <predicate>`` after it for the other kinds."""
        using = f" USING {self.method}" if self.method != "btree" else ""
        where = f" WHERE {self.predicate}" if self.predicate else ""
        return f"missing_index:{self.table}{using}({','.join(self.columns)}){where}"

    @property
    def expressions(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if is_expression(c))

    @property
    def plain(self) -> bool:
        return self.method == "btree" and self.predicate is None and not self.expressions

    @property
    def kind(self) -> str:
        """brin | partial | expression | btree (what the advice explains)."""
        if self.method != "btree":
            return self.method
        if self.predicate:
            return "partial"
        return "expression" if self.expressions else "btree"

    def definition(self, name: str | None = None, concurrently: bool = True) -> str:
        """The CREATE INDEX statement, identifiers quoted (named by :func:`index_name` by default)."""
        how = "CONCURRENTLY " if concurrently else ""
        return f"CREATE INDEX {how}{quote_ident(name or index_name(self))} ON {self._target()}"

    def hypothetical_definition(self) -> str:
        """The unnamed CREATE INDEX that ``hypopg_create_index`` takes."""
        return f"CREATE INDEX ON {self._target()}"

    def _target(self) -> str:
        schema, table = split_table(self.table)
        using = f" USING {self.method}" if self.method != "btree" else ""
        items = ", ".join(c if is_expression(c) else quote_ident(c) for c in self.columns)
        where = f" WHERE {self.predicate}" if self.predicate else ""
        return f"{quote_ident(schema)}.{quote_ident(table)}{using} ({items}){where}"


def is_expression(item: str) -> bool:
    """A key item in parentheses is an expression; anything else names a column."""
    return item.startswith("(") and item.endswith(")")


def candidate_from_key(key: str) -> IndexCandidate:
    """Inverse of :attr:`IndexCandidate.key` (plain keys of earlier versions included). ValueError when the
    key is malformed."""
    body = key.removeprefix("missing_index:")
    open_at = body.find("(")
    if open_at < 0:
        return IndexCandidate(body, ())
    head = body[:open_at]
    table, _, method = head.partition(" USING ")
    close_at = matching_paren(body, open_at)
    if close_at < 0:
        raise ValueError(f"unbalanced parentheses in index key {key!r}")
    items = tuple(c for c in split_top_level(body[open_at + 1 : close_at]) if c)
    rest = body[close_at + 1 :]
    predicate = None
    if rest:
        if not rest.startswith(" WHERE "):
            raise ValueError(f"unexpected text after the key columns of {key!r}")
        predicate = rest.removeprefix(" WHERE ")
    return IndexCandidate(table.strip(), items, (method or "btree").strip(), predicate or None)


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
    items = [
        (re.sub(r"[^a-z0-9_]+", "_", c.lower()).strip("_") or "expr") if is_expression(c) else c
        for c in candidate.columns
    ]
    extra = [candidate.method] if candidate.method != "btree" else []
    if candidate.predicate:
        extra.append(f"part{stable_hash(candidate.predicate) % 10000:04d}")
    name = "_".join((table, *items, *extra, "idx"))
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
    """An existing valid index that serves whatever the candidate would: a B-tree whose leading key items are
    the candidate's, in order (expressions compared as normalized text), and that is not partial unless it
    has the candidate's very predicate. A partial candidate ``(c…) WHERE p = v`` is also served by a full
    B-tree leading with ``p, c…``; a BRIN candidate by any B-tree or BRIN index leading with its column.

    (An index on the same equality columns in another order also serves the query; the planner check —
    HypoPG, or a baseline plan that already uses an index — rejects such candidates.)"""
    wanted = _normalized_items(candidate.columns)
    if wanted is None:
        return None
    forms = [wanted]
    column = _equality_column(candidate.predicate)
    if column is not None:
        forms.append((column, *[c for c in wanted if c != column]))
    want_pred = _normalized_predicate(candidate.predicate)
    for index in indexes:
        if index.qualified_table != candidate.table or not index.valid:
            continue
        if index.method not in (("btree", "brin") if candidate.method == "brin" else ("btree",)):
            continue
        have = _existing_items(index)
        if have is None:
            continue
        own = _normalized_predicate(index.predicate)
        if index.predicate is not None and (own is None or own != want_pred):
            continue
        candidates = forms if index.predicate is None else [wanted]
        width = 1 if candidate.method == "brin" else None
        for form in candidates:
            need = form[:width] if width else form
            if need and tuple(have[: len(need)]) == need:
                return index
    return None


def _normalized_items(items: Sequence[str]) -> tuple[str, ...] | None:
    out = []
    for item in items:
        if is_expression(item):
            try:
                out.append("(" + normalize(item) + ")")
            except NotIndexable:
                return None
        else:
            out.append(item)
    return tuple(out)


def _normalized_predicate(predicate: str | None) -> str | None:
    if predicate is None:
        return None
    try:
        return normalize(predicate)
    except NotIndexable:
        return None


def _equality_column(predicate: str | None) -> str | None:
    """``col`` of a predicate ``col = constant`` (the shape partial-index advice writes), else None."""
    if predicate is None:
        return None
    try:
        node = parse_expression(predicate)
    except NotIndexable:
        return None
    kind, body = node_of(node)
    if kind != "A_Expr" or body.get("kind") != "AEXPR_OP":
        return None
    refs = column_refs(body.get("lexpr"))
    if len(refs) != 1 or node_of(body.get("lexpr"))[0] != "ColumnRef" or column_refs(body.get("rexpr")):
        return None
    return refs[0][-1] if refs[0] else None


def _existing_items(index: ExistingIndex) -> tuple[str, ...] | None:
    """An existing index's key items as candidates write them (expressions normalized), or None."""
    expressions = split_top_level(index.expressions) if index.expressions else []
    out = []
    for column in index.columns:
        if column is not None:
            out.append(column)
            continue
        if not expressions:
            return None
        try:
            out.append("(" + normalize(expressions.pop(0)) + ")")
        except NotIndexable:
            out.append("(?)")
    return tuple(out)


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
            try:
                done = covering_index(candidate_from_key(key), indexes) is not None
            except ValueError:  # a malformed key (not written by us): obsolete
                done = False
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
