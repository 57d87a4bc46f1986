"""Index expressions and partial-index predicates as SQL text: a small, closed deparser over libpg_query's JSON
tree. Pure.

Why a closed deparser and not pglast's own: an expression or predicate ends up in a CREATE INDEX statement
(and in a recommendation key a hostile writer could edit). Only the node kinds an index expression needs are
rendered — column references, constants, function calls, casts and a few operators — and anything else is
refused, so no text that parses as more than an expression can come out. The same function normalizes the
catalog's own ``pg_get_expr`` output, so "is this index already there" compares like with like.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pglast import parser as pg_parser

# --------------------------------------------------------------------------------------------- expressions


class NotIndexable(ValueError):
    """The expression holds something an index expression or predicate may not (a parameter, a subquery, an
    aggregate, an unknown node)."""


_IDENT = re.compile(r"[a-z_][a-z0-9_$]*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_OPERATORS = frozenset({"=", "<>", "<", ">", "<=", ">=", "+", "-", "*", "/", "||", "%"})
_COMPARISONS = frozenset({"=", "<>", "<", ">", "<=", ">="})


def node_of(wrapper: Any) -> tuple[str, dict]:
    if isinstance(wrapper, dict) and len(wrapper) == 1:
        ((kind, body),) = wrapper.items()
        if isinstance(body, dict):
            return kind, body
    return "", {}


def quote_name(name: str) -> str:
    """An identifier, quoted unless it is a plain lower-case name (keywords are quoted too, to be safe)."""
    if _IDENT.fullmatch(name) and name.upper() not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


_KEYWORDS = frozenset(
    [
        "ALL",
        "AND",
        "ANY",
        "ARRAY",
        "AS",
        "ASC",
        "BETWEEN",
        "BOTH",
        "CASE",
        "CAST",
        "CHECK",
        "COLLATE",
        "COLUMN",
        "CONSTRAINT",
        "CREATE",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "CURRENT_USER",
        "DEFAULT",
        "DESC",
        "DISTINCT",
        "DO",
        "ELSE",
        "END",
        "EXCEPT",
        "EXTRACT",
        "FALSE",
        "FETCH",
        "FOR",
        "FOREIGN",
        "FROM",
        "GRANT",
        "GROUP",
        "HAVING",
        "IN",
        "INTERVAL",
        "LEADING",
        "LIMIT",
        "NOT",
        "NULL",
        "OFFSET",
        "ON",
        "ONLY",
        "OR",
        "ORDER",
        "OVERLAY",
        "POSITION",
        "PRIMARY",
        "REFERENCES",
        "SELECT",
        "SUBSTRING",
        "TABLE",
        "THEN",
        "TO",
        "TRAILING",
        "TREAT",
        "TRIM",
        "TRUE",
        "UNION",
        "UNIQUE",
        "USER",
        "USING",
        "WHEN",
        "WHERE",
        "WINDOW",
        "WITH",
    ]
)


def literal(value: str) -> str:
    """A string constant as SQL text (quotes doubled; standard_conforming_strings)."""
    return "'" + value.replace("'", "''") + "'"


def _const(body: dict) -> str:
    if body.get("isnull"):
        return "NULL"
    if "sval" in body:
        return literal(str((body["sval"] or {}).get("sval", "")))
    if "ival" in body:
        return str(int((body["ival"] or {}).get("ival", 0)))
    if "fval" in body:
        text = str((body["fval"] or {}).get("fval", "0"))
        if not _NUMBER.fullmatch(text):
            raise NotIndexable(f"odd numeric constant {text!r}")
        return text
    if "boolval" in body:
        return "true" if (body["boolval"] or {}).get("boolval") else "false"
    raise NotIndexable("a constant of an unknown kind")


def _names(items: list) -> list[str]:
    out = []
    for item in items or []:
        kind, body = node_of(item)
        if kind != "String":
            raise NotIndexable("a name that is not a plain string")
        out.append(str(body.get("sval", "")))
    return out


def _type_name(body: dict) -> str:
    if body.get("setof") or body.get("arrayBounds") or body.get("pct_type"):
        raise NotIndexable("an unusual type name")
    names = _names(body.get("names", []))
    if names[:1] == ["pg_catalog"]:
        names = names[1:]
    text = ".".join(quote_name(n) for n in names)
    mods = []
    for mod in body.get("typmods") or []:
        kind, inner = node_of(mod)
        if kind != "A_Const" or "ival" not in inner:
            raise NotIndexable("a type modifier that is not an integer")
        mods.append(_const(inner))
    return text + (f"({', '.join(mods)})" if mods else "")


def deparse(
    wrapper: Any,
    column: Callable[[list[str]], str] | None = None,
    *,
    strip_constant_casts: bool = False,
) -> str:
    """SQL text of an expression or predicate built only from column references, constants, function calls
    (plain, non-aggregate), casts, comparison and arithmetic operators, AND, IS [NOT] NULL and IN lists.

    ``column(fields)`` renders a column reference (default: its last name, unqualified — an index expression
    names columns of its one table). ``strip_constant_casts`` drops casts of constants (``'day'::text``),
    which the catalog adds when it prints an expression back: for comparing texts, not for building DDL.
    Raises :class:`NotIndexable` for anything else."""
    kind, body = node_of(wrapper)

    def again(node: Any) -> str:
        return deparse(node, column, strip_constant_casts=strip_constant_casts)

    if kind == "ColumnRef":
        fields = body.get("fields", [])
        names = _names(fields)
        if not names:
            raise NotIndexable("a column reference without a name")
        return column(names) if column else quote_name(names[-1])
    if kind == "A_Const":
        return _const(body)
    if kind == "FuncCall":
        if any(
            body.get(k)
            for k in ("agg_order", "agg_filter", "over", "agg_within_group", "agg_star", "agg_distinct")
        ) or body.get("func_variadic"):
            raise NotIndexable("an aggregate, window or variadic call")
        names = _names(body.get("funcname", []))
        if names[:1] == ["pg_catalog"] and len(names) == 2:
            names = names[1:]
        if not 1 <= len(names) <= 2:
            raise NotIndexable("an odd function name")
        quote = (
            (lambda n: '"' + n.replace('"', '""') + '"')
            if body.get("funcformat") == "COERCE_SQL_SYNTAX"
            else quote_name
        )
        fname = ".".join(quote(n) for n in names)
        if body.get("funcformat") == "COERCE_SQL_SYNTAX" and len(names) == 1:
            fname = "pg_catalog." + fname  # extract(), btrim(), substring(): the catalog's function
        return f"{fname}({', '.join(again(a) for a in body.get('args') or [])})"
    if kind == "TypeCast":
        inner_kind, _ = node_of(body.get("arg"))
        if strip_constant_casts and inner_kind == "A_Const":
            return again(body.get("arg"))
        return f"CAST({again(body.get('arg'))} AS {_type_name(body.get('typeName') or {})})"
    if kind == "A_Expr":
        names = _names(body.get("name", []))
        op = names[-1] if names else ""
        a_kind = body.get("kind")
        if a_kind == "AEXPR_OP" and op in _OPERATORS and len(names) == 1:
            left = body.get("lexpr")
            right = again(body.get("rexpr"))
            return f"({again(left)} {op} {right})" if left is not None else f"({op}{right})"
        if a_kind == "AEXPR_IN" and op in ("=", "<>"):
            _, items = node_of(body.get("rexpr"))
            values = ", ".join(again(v) for v in items.get("items", []))
            return f"({again(body.get('lexpr'))} {'IN' if op == '=' else 'NOT IN'} ({values}))"
        raise NotIndexable(f"operator {op or a_kind}")
    if kind == "BoolExpr" and body.get("boolop") == "AND_EXPR":
        return "(" + " AND ".join(again(a) for a in body.get("args", [])) + ")"
    if kind == "NullTest":
        test = "IS NULL" if body.get("nulltesttype") == "IS_NULL" else "IS NOT NULL"
        return f"({again(body.get('arg'))} {test})"
    if kind == "List":
        raise NotIndexable("a list")
    raise NotIndexable(f"{kind or 'an unknown node'} in an index expression")


def column_refs(wrapper: Any) -> list[list[str]]:
    """The name lists of every column reference inside an expression."""
    found: list[list[str]] = []
    stack = [wrapper]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind, body = node_of(item)
            if kind == "ColumnRef":
                try:
                    found.append(_names(body.get("fields", [])))
                except NotIndexable:
                    found.append([])
                continue
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def function_calls(wrapper: Any) -> list[tuple[str, int]]:
    """(name, argument count) of every function call inside an expression (``pg_catalog.`` dropped)."""
    found: list[tuple[str, int]] = []
    stack = [wrapper]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind, body = node_of(item)
            if kind == "FuncCall":
                names = [n for n in _names(body.get("funcname", [])) if n != "pg_catalog"]
                found.append((".".join(names), len(body.get("args") or [])))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def parse_expression(text: str) -> Any:
    """The JSON node of one expression (``SELECT <text>``); NotIndexable when it is not exactly one."""
    try:
        tree = json.loads(pg_parser.parse_sql_json(f"SELECT {text}"))
    except (pg_parser.ParseError, ValueError, RecursionError) as exc:
        raise NotIndexable(f"not an expression: {str(exc).splitlines()[0][:120]}") from None
    statements = tree.get("stmts", [])
    if len(statements) != 1:
        raise NotIndexable("more than one statement")
    kind, body = node_of(statements[0].get("stmt"))
    targets = body.get("targetList") or []
    others = set(body) - {"targetList", "limitOption", "op"}
    if kind != "SelectStmt" or len(targets) != 1 or others:
        raise NotIndexable("not a single expression")
    _, target = node_of(targets[0])
    if target.get("name"):
        raise NotIndexable("not a single expression")
    return target.get("val")


def normalize(text: str) -> str:
    """A canonical text of an expression or predicate (as written by us or printed by ``pg_get_expr``), for
    equality tests: casts of constants and ``pg_catalog.`` dropped, redundant parentheses gone."""
    rendered = deparse(parse_expression(text), strip_constant_casts=True)
    while rendered.startswith("(") and _matching(rendered, 0) == len(rendered) - 1:
        rendered = rendered[1:-1]
    return rendered


def _matching(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at ``start`` (quotes respected), or -1."""
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    i += 1
                else:
                    quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def matching_paren(text: str, start: int) -> int:
    return _matching(text, start)


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside parentheses and quotes (``a, f(b, c)`` -> ``a``, ``f(b, c)``)."""
    parts: list[str] = []
    depth = 0
    quote = ""
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    current.append(text[i + 1])
                    i += 1
                else:
                    quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")":
            depth -= 1
            current.append(ch)
        elif ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    tail = "".join(current).strip()
    if tail or parts:
        parts.append(tail)
    return parts
