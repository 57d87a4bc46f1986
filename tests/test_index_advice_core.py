"""Index advice beyond plain columns, pure parts (issue 13 points 1, 2, 3, 5, 8): keys of every index kind,
expression and literal extraction, the closed deparser, covering by existing indexes, pg_stats fractions,
BRIN eligibility, size estimates and the set cover."""

from __future__ import annotations

import pytest

from autopilot_pipeline.profiling.expressions import NotIndexable, deparse, normalize, parse_expression
from autopilot_pipeline.profiling.index_selection import (
    ColumnStats,
    TableActivity,
    brin_eligible,
    brin_size,
    btree_size,
    is_prefix,
    partial_predicate,
    select_indexes,
    value_fraction,
    why_this_type,
    write_overhead,
)
from autopilot_pipeline.profiling.indexes import (
    ExistingIndex,
    IndexCandidate,
    candidate_from_key,
    covering_index,
    index_name,
)
from autopilot_pipeline.profiling.parsing import ColumnValue, ExpressionUse, parse_query
from autopilot_pipeline.profiling.report import assemble_optimizations
from autopilot_pipeline.profiling.settings import ProfilingSettings

S = ProfilingSettings()
PLAIN = IndexCandidate("shop.orders", ("status", "created_at"))
EXPR = IndexCandidate("app.users", ("(date_trunc('day', ts))", "plan"))
PARTIAL = IndexCandidate("app.orders", ("created_at",), predicate="(status = 'it''s, (x)')")
BRIN = IndexCandidate("app.readings", ("recorded_at",), "brin")


# --------------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize("candidate", [PLAIN, EXPR, PARTIAL, BRIN])
def test_every_kind_round_trips_through_its_key(candidate: IndexCandidate) -> None:
    assert candidate_from_key(candidate.key) == candidate
    assert len(index_name(candidate).encode()) <= 63


def test_plain_keys_keep_their_old_format_and_old_rows_still_parse() -> None:
    assert PLAIN.key == "missing_index:shop.orders(status,created_at)"
    assert PLAIN.definition() == (
        "CREATE INDEX CONCURRENTLY orders_status_created_at_idx ON shop.orders (status, created_at)"
    )
    assert candidate_from_key("missing_index:shop.orders(status,created_at)") == PLAIN
    assert PLAIN.kind == "btree" and PLAIN.plain


def test_definitions_of_the_other_kinds() -> None:
    assert EXPR.key == "missing_index:app.users((date_trunc('day', ts)),plan)"
    assert EXPR.hypothetical_definition() == "CREATE INDEX ON app.users ((date_trunc('day', ts)), plan)"
    assert PARTIAL.hypothetical_definition() == (
        "CREATE INDEX ON app.orders (created_at) WHERE (status = 'it''s, (x)')"
    )
    assert BRIN.key == "missing_index:app.readings USING brin(recorded_at)"
    assert BRIN.hypothetical_definition() == "CREATE INDEX ON app.readings USING brin (recorded_at)"
    assert (EXPR.kind, PARTIAL.kind, BRIN.kind) == ("expression", "partial", "brin")
    assert index_name(PARTIAL) != index_name(
        IndexCandidate("app.orders", ("created_at",), predicate="(a = 1)")
    )


@pytest.mark.parametrize(
    "key",
    ["missing_index:app.t((lower(x)", "missing_index:app.t(a) AND 1 = 1", "missing_index:app.t(a)WHERE b"],
)
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        candidate_from_key(key)


# --------------------------------------------------------------------------------------------- extraction


def test_expressions_and_constants_come_from_the_parsed_query() -> None:
    q = parse_query(
        "SELECT u.id FROM app.users u JOIN app.orgs o ON o.id = u.org_id "
        "WHERE lower(u.email) = lower($1) AND u.status = 'pending' AND u.deleted_at IS NULL "
        "AND date_trunc('day', u.signed_up) BETWEEN '2026-01-01' AND '2026-01-02' AND o.kind = 5"
    )
    assert set(q.expressions) == {
        ExpressionUse("app.users", "(lower(email))", "eq"),
        ExpressionUse("app.users", "(date_trunc('day', signed_up))", "range"),
    }
    assert set(q.values) == {
        ColumnValue("app.users", "status", "'pending'"),
        ColumnValue("app.users", "deleted_at", "NULL"),
        ColumnValue("app.orgs", "kind", "5"),
    }


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1 FROM t WHERE date_trunc($1, ts) = $2",  # the field is a parameter: no fixed expression
        "SELECT 1 FROM t a JOIN u b ON lower(a.x) = lower(b.y) || a.z",  # the other side reads the table
        "SELECT 1 FROM t WHERE f((SELECT max(x) FROM u)) = 1",
        "SELECT 1 FROM t WHERE coalesce(a, b) > 1 OR lower(c) = 'x'",  # under OR: no index serves one branch
        "SELECT 1 FROM t WHERE lower(a) = upper(b)",  # both sides read the table
    ],
)
def test_no_expression_candidate_where_none_can_be_indexed(text: str) -> None:
    assert parse_query(text).expressions == ()


def test_the_deparser_is_closed() -> None:
    assert deparse(parse_expression("CAST(ts AS date)")) == "CAST(ts AS date)"
    assert deparse(parse_expression("lower(a || 'x''y')")) == "lower((a || 'x''y'))"
    assert deparse(parse_expression("extract(year from ts)")) == "pg_catalog.\"extract\"('year', ts)"
    for bad in (
        "(SELECT 1)",
        "a OR b",
        "$1",
        "count(*)",
        "random() OVER ()",
        "ARRAY[1]",
        "a IS DISTINCT FROM b",
    ):
        with pytest.raises(NotIndexable):
            deparse(parse_expression(bad))
    for bad in ("1; DROP TABLE t", "1 AS x", "1 FROM t", "1, 2"):
        with pytest.raises(NotIndexable):
            parse_expression(bad)


def test_normalized_texts_match_what_the_catalog_prints() -> None:
    assert normalize("date_trunc('day'::text, ts)") == normalize("(date_trunc('day', ts))")
    assert normalize("(status = 'pending'::text)") == normalize("(status = 'pending')")
    assert normalize("lower(email)") != normalize("upper(email)")


# --------------------------------------------------------------------------------------------- covering


def _ix(columns: tuple, method: str = "btree", **kw) -> ExistingIndex:
    return ExistingIndex("app", kw.pop("table", "orders"), "ix", method, columns, **kw)


def test_existing_indexes_cover_candidates_of_every_kind() -> None:
    lower = IndexCandidate("app.orders", ("(lower(email))",))
    assert covering_index(lower, [_ix((None,), expressions="lower(email)")]) is not None
    assert covering_index(lower, [_ix(("email",))]) is None  # a plain index cannot serve lower(email)
    pending = IndexCandidate("app.orders", ("created_at",), predicate="(status = 'pending')")
    assert covering_index(pending, [_ix(("status", "created_at"))]) is not None
    assert covering_index(pending, [_ix(("created_at",), predicate="(status = 'pending'::text)")]) is not None
    assert covering_index(pending, [_ix(("created_at",), predicate="(status = 'shipped'::text)")]) is None
    assert (
        covering_index(IndexCandidate("app.orders", ("created_at",)), [_ix(("created_at",), predicate="(x)")])
        is None
    )
    brin = IndexCandidate("app.orders", ("created_at",), "brin")
    assert covering_index(brin, [_ix(("created_at", "id"))]) is not None
    assert covering_index(brin, [_ix(("created_at",), "brin")]) is not None
    assert (
        covering_index(IndexCandidate("app.orders", ("created_at",)), [_ix(("created_at",), "brin")]) is None
    )


# --------------------------------------------------------------------------------------------- statistics


STATUS = ColumnStats(0.0, 3.0, {"delivered": 0.9, "shipped": 0.0997, "pending": 0.0003})


def test_value_fractions_as_the_planner_reasons() -> None:
    assert value_fraction(STATUS, "'pending'", 1e6) == pytest.approx(0.0003)
    tail = ColumnStats(0.1, -0.5, {"a": 0.2, "b": 0.1})  # 500,000 distinct of 1 M rows
    assert value_fraction(tail, "'zzz'", 1e6) == pytest.approx(0.6 / (500_000 - 2))
    assert value_fraction(tail, "NULL", 1e6) == 0.1
    assert value_fraction(ColumnStats(), "'x'", 1e6) is None  # never analyzed
    flag = ColumnStats(0.0, 2.0, {"t": 0.5, "f": 0.5})
    assert value_fraction(flag, "true", 1e6) == 0.5
    assert value_fraction(flag, "'maybe'", 1e6) is None  # all values listed, not this one: no guess


def test_partial_predicate_only_for_one_rare_value_in_every_call() -> None:
    assert partial_predicate("status", ["'pending'"] * 5, STATUS, 1e6, S) == ("(status = 'pending')", 0.0003)
    assert partial_predicate("status", ["'pending'", "'shipped'"], STATUS, 1e6, S) is None  # varies
    assert partial_predicate("status", ["'shipped'"], STATUS, 1e6, S) is None  # 10 %: not rare
    assert partial_predicate("status", ["'pending'", "?"], STATUS, 1e6, S) is None  # once a parameter
    nulls = ColumnStats(0.001, -1.0)
    assert partial_predicate("done_at", ["NULL"], nulls, 1e6, S) == ("(done_at IS NULL)", 0.001)


def test_brin_needs_a_large_append_only_table_in_column_order() -> None:
    big = TableActivity(rows=2e6, pages=20_000, inserts=2_000_000, updates=1000, deletes=0, stats_days=10)
    ordered = ColumnStats(correlation=0.99, avg_width=8)
    assert brin_eligible(big, ordered, S)
    assert not brin_eligible(big, ColumnStats(correlation=0.4), S)
    churn = TableActivity(
        rows=2e6, pages=20_000, inserts=1_000_000, updates=400_000, deletes=10, stats_days=10
    )
    assert not brin_eligible(churn, ordered, S)
    assert not brin_eligible(TableActivity(rows=5e4, pages=500, inserts=5e4), ordered, S)
    assert brin_size(20_000, 8) * 500 < btree_size(2e6, [8])
    assert (
        write_overhead(IndexCandidate("t", ("c",), "brin"), big)
        < write_overhead(IndexCandidate("t", ("c",)), big) / 1000
    )
    assert btree_size(1e6, [8], 0.0003) * 100 < btree_size(1e6, [8])


# --------------------------------------------------------------------------------------------- the set


A = IndexCandidate("app.t", ("a",))
AB = IndexCandidate("app.t", ("a", "b"))
ABC = IndexCandidate("app.t", ("a", "b", "c"))
X = IndexCandidate("app.t", ("(lower(x))",))


def test_one_wider_index_serves_what_two_would() -> None:
    options = {"q1": {A: 10.0, AB: 11.0, ABC: 12.0}, "q2": {AB: 5.0, ABC: 6.0}, "q3": {ABC: 4.0, AB: 40.0}}
    base = {"q1": 1000.0, "q2": 1000.0, "q3": 1000.0}
    weight = {A: 100.0, AB: 150.0, ABC: 200.0}
    chosen = select_indexes(options, base, weight, S)
    assert {c.candidate for c in chosen.values()} == {ABC}
    assert chosen["q2"].cost == 6.0


def test_a_small_index_never_displaces_a_much_better_one() -> None:
    options = {"q": {A: 300.0, AB: 8.0}}  # (a) saves 70 %, but (a, b) makes the query ~40x cheaper
    chosen = select_indexes(options, {"q": 1000.0}, {A: 1.0, AB: 1_000_000.0}, S)
    assert chosen["q"].candidate == AB


def test_prefixes_are_folded_into_the_wider_chosen_index() -> None:
    options = {"q1": {A: 10.0, ABC: 100.0}, "q2": {ABC: 5.0}}  # (a, b, c) still saves 90 % on q1
    chosen = select_indexes(options, {"q1": 1000.0, "q2": 1000.0}, {A: 1.0, ABC: 2.0}, S)
    assert {c.candidate for c in chosen.values()} == {ABC}
    assert (
        is_prefix(A, ABC)
        and not is_prefix(ABC, A)
        and not is_prefix(A, IndexCandidate("app.t", ("a",), "brin"))
    )


def test_thresholds_and_cheap_queries() -> None:
    assert select_indexes({"q": {A: 600.0}}, {"q": 1000.0}, {A: 1.0}, S) == {}  # saves 40 % < 50 %
    assert (
        select_indexes({"q": {X: 600.0}}, {"q": 1000.0}, {X: 1.0}, S)["q"].candidate == X
    )  # expression: 25 %
    assert select_indexes({"q": {A: 1.0}}, {"q": 50.0}, {A: 1.0}, S) == {}  # below min_cost


def test_why_and_the_report_carry_the_details() -> None:
    assert "partial" in why_this_type(PARTIAL, 0.0003) and "0.03 %" in why_this_type(PARTIAL, 0.0003)
    assert "IMMUTABLE" in why_this_type(EXPR) and "BRIN" in why_this_type(BRIN, correlation=0.99)
    assert "point lookups" in why_this_type(PLAIN, point_lookups=True)
    rec = {
        "recommendation_key": PARTIAL.key,
        "recommendation_type": "missing_index",
        "priority": "high",
        "description": "d",
        "metadata": {
            "why": "w",
            "estimated_size_bytes": 8192,
            "queries": [{"fingerprint": "f", "query": "q"}],
        },
    }
    (item,) = assemble_optimizations([rec])["optimizations"][0]["items"]
    assert item["why"] == "w" and item["estimatedSizeBytes"] == 8192 and item["queries"][0]["query"] == "q"
