"""Query parsing and fingerprints with pglast.

Why pglast: it is PostgreSQL's own parser (libpg_query) compiled as a C extension, so every statement the
server accepts parses the same way here, and its fingerprint is the one pg_stat_statements-style tools
use: ``WHERE id = 5``, ``WHERE id = 7`` and ``WHERE id = $1`` get one fingerprint, so app-logged queries
(literals) and pg_stat_statements entries (``$n`` parameters) land on the same key. sqlglot parses many
dialects approximately; here one dialect parsed exactly is worth more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
from pglast import parser as pg_parser

from autopilot_pipeline.profiling.expressions import NotIndexable, column_refs, deparse, parse_expression
from autopilot_pipeline.profiling.settings import MAX_QUERY_CHARS

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
class ExpressionUse:
    """An expression over one table's columns compared with something else (``lower(email) = lower($1)``):
    a candidate key item for an expression index. ``expression`` is in parentheses, columns unqualified."""

    table: str | None
    expression: str
    role: str  # eq | range
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnValue:
    """A column compared for equality with a constant (``status = 'pending'``; ``value`` as SQL text, or
    ``NULL`` for IS NULL): the literal a partial index could be restricted to."""

    table: str | None
    column: str
    value: str
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedQuery:
    fingerprint: str
    normalized: str
    statement: str  # select | insert | update | delete | merge | utility
    tables: tuple[str, ...]
    columns: tuple[ColumnUse, ...]
    expressions: tuple[ExpressionUse, ...] = ()
    values: tuple[ColumnValue, ...] = ()

    @property
    def explainable(self) -> bool:
        return self.statement in ("select", "update", "delete")

    def resolved(
        self, table_names: Mapping[str, str], columns_of: Mapping[str, Iterable[str]] | None = None
    ) -> ParsedQuery:
        """Qualify table names through ``table_names`` (as written -> schema.table) and give unqualified,
        ambiguous columns the one table in their scope that has them (``columns_of``)."""
        tables = tuple(dict.fromkeys(table_names.get(t, t) for t in self.tables))

        def owner(table: str | None, columns: Iterable[str], scope: tuple[str, ...]) -> str | None:
            if table:
                return table_names.get(table, table)
            if columns_of is None:
                return None
            owners = [table_names.get(t, t) for t in scope]
            owners = [t for t in owners if set(columns) <= set(columns_of.get(t, ()))]
            return owners[0] if len(owners) == 1 else None

        uses = [replace(u, table=owner(u.table, [u.column], u.scope), scope=()) for u in self.columns]
        values = [replace(v, table=owner(v.table, [v.column], v.scope), scope=()) for v in self.values]
        exprs = [
            replace(e, table=owner(e.table, _expression_columns(e.expression), e.scope), scope=())
            for e in self.expressions
        ]
        return replace(
            self, tables=tables, columns=tuple(uses), values=tuple(values), expressions=tuple(exprs)
        )


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


def _expression_columns(expression: str) -> list[str]:
    try:
        return [names[-1] for names in column_refs(parse_expression(expression)) if names]
    except NotIndexable:
        return []


class _Extractor:
    """Walks a libpg_query JSON tree collecting base tables and filter/join/sort columns."""

    def __init__(self) -> None:
        self.tables: list[str] = []
        self.uses: list[ColumnUse] = []
        self.expressions: list[ExpressionUse] = []
        self.values: list[ColumnValue] = []

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
                self.values.append(ColumnValue(ref[0], ref[1], "NULL", ref[2]))
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
                    self.expression(this, other, "eq" if op == "=" else "range", scope)
                    continue
                refs = self.refs_in(other, scope)
                if ref[0] is not None and any(r[0] == ref[0] for r in refs):
                    continue  # a = b within one table: no index lookup helps
                self.add(ref, "range" if op != "=" else "join" if refs else "eq", scope)
                if op == "=" and not refs:
                    constant = _constant(other)
                    if constant is not None:
                        self.values.append(ColumnValue(ref[0], ref[1], constant, ref[2]))
        elif op_kind in ("AEXPR_IN", "AEXPR_OP_ANY") and op == "=":
            ref = self.column(left, scope)
            if ref is not None:
                self.add(ref, "in", scope)
        elif op_kind in ("AEXPR_BETWEEN", "AEXPR_BETWEEN_SYM"):
            ref = self.column(left, scope)
            if ref is not None:
                self.add(ref, "range", scope)
            else:
                self.expression(left, right, "range", scope)

    def expression(self, this: Any, other: Any, role: str, scope: _Scope) -> None:
        """Record ``this`` as an expression-index candidate when it is a function call or cast over columns
        of one table only, with nothing but indexable nodes inside, and ``other`` does not read that table."""
        if _node(this)[0] not in ("FuncCall", "TypeCast"):
            return
        refs = self.refs_in(this, scope)
        if not refs or len(refs) != len(column_refs(this)):
            return  # no column, or one from a subquery/CTE we cannot index
        tables = {r[0] for r in refs}
        scopes = {r[2] for r in refs}
        if len(tables) != 1 or len(scopes) != 1:
            return
        table = next(iter(tables))
        if any(
            r[0] == table and (table is not None or r[2] == refs[0][2]) for r in self.refs_in(other, scope)
        ):
            return
        try:
            text = deparse(this)
        except NotIndexable:
            return
        self.expressions.append(ExpressionUse(table, f"({text})", role, refs[0][2]))


def _constant(wrapper: Any) -> str | None:
    """SQL text of a constant (a literal, or a literal with a cast), else None."""
    kind, body = _node(wrapper)
    if kind == "TypeCast" and _node(body.get("arg"))[0] == "A_Const":
        kind, wrapper = "A_Const", body.get("arg")
    if kind != "A_Const" or _node(wrapper)[1].get("isnull"):
        return None
    try:
        return deparse(wrapper)
    except NotIndexable:
        return None


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
        expressions=tuple(dict.fromkeys(extractor.expressions)),
        values=tuple(dict.fromkeys(extractor.values)),
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
