"""The pure profiling rules: fingerprints, column extraction, statistics, index and maintenance advice."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from autopilot_pipeline.profiling.drops import duplicate_index_findings, unused_index_findings
from autopilot_pipeline.profiling.findings import (
    DatabaseStats,
    Recommendation,
    analyze_threshold,
    insert_vacuum_threshold,
    maintenance_findings,
    resource_findings,
    vacuum_threshold,
    wraparound_findings,
)
from autopilot_pipeline.profiling.indexes import (
    ExistingIndex,
    IndexCandidate,
    IndexVerdict,
    candidate_from_key,
    choose_index,
    covering_index,
    index_candidates,
    index_name,
    merge_index_advice,
    rank_index_advice,
    stale_recommendations,
)
from autopilot_pipeline.profiling.parsing import BadQuery, fingerprint_queries, parse_query
from autopilot_pipeline.profiling.report import assemble_optimizations
from autopilot_pipeline.profiling.settings import MAX_QUERY_CHARS, ProfilingSettings
from autopilot_pipeline.profiling.statements import (
    diff_statements,
    mark_new_fingerprints,
    query_stats,
    statements_columns,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SETTINGS = ProfilingSettings()


# --------------------------------------------------------------------------------------------- fingerprints


def test_literals_and_parameters_share_one_fingerprint():
    shapes = [
        "SELECT * FROM demo.orders WHERE id = 5",
        "select *   from demo.orders where id=7",
        "SELECT * FROM demo.orders WHERE id = $1",
    ]
    assert len({parse_query(q).fingerprint for q in shapes}) == 1
    assert (
        parse_query("SELECT * FROM demo.orders WHERE customer_id = 5").fingerprint
        != parse_query(shapes[0]).fingerprint
    )
    normalized = parse_query("SELECT id FROM t WHERE email = 'a@b.c' AND n > 3").normalized
    assert normalized == "SELECT id FROM t WHERE email = $1 AND n > $2"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (None, "empty"),
        ("SELEC id FROM t", "unparseable"),
        ("SELECT * FROM t WHERE (a = 1", "unparseable"),
        ("SELECT 1; DROP TABLE t", "unparseable"),  # two statements: never EXPLAINed
        ("SELECT 'x" + "y" * MAX_QUERY_CHARS + "'", "too_long"),
        ("SELECT 'a\u202eb'", "odd_encoding"),  # bidi override
        ("SELECT 'zero\u200bwidth'", "odd_encoding"),
        ("SELECT 'JosÃ© MÃ¼ller'", "odd_encoding"),  # UTF-8 read as Latin-1
        ("SELECT 'bell \x07 \x1b[31m'", "odd_encoding"),
    ],
)
def test_bad_texts_are_classified(text, kind):
    with pytest.raises(BadQuery) as err:
        parse_query(text)
    assert err.value.kind == kind


def test_ordinary_unicode_is_fine():
    assert parse_query("SELECT id FROM t WHERE name = 'Müller 🚀 東京'").statement == "select"


def test_fingerprinting_counts_bad_rows_and_never_raises():
    frame = pl.DataFrame(
        {
            "query": [
                "SELECT * FROM t WHERE id = 1",
                "SELECT * FROM t WHERE id = 2",
                "SELEC oops",
                "SELEC oops",  # the same bad text twice counts twice
                "SELECT 'a\x07'",
                "",
            ]
        }
    )
    out, bad, parsed = fingerprint_queries(frame)
    assert bad == {"empty": 1, "odd_encoding": 1, "unparseable": 2}
    assert out["fingerprint"].null_count() == 4
    assert out["fingerprint"][0] == out["fingerprint"][1]
    assert list(parsed) == [out["fingerprint"][0]]


# --------------------------------------------------------------------------------------------- columns


def uses(text: str, **resolve) -> set[tuple]:
    query = parse_query(text)
    if resolve:
        query = query.resolved({}, resolve["columns"])
    return {(u.table, u.column, u.role) for u in query.columns}


def test_where_join_and_order_columns_are_extracted():
    assert uses(
        "SELECT o.id FROM demo.orders o JOIN demo.order_items i ON i.order_id = o.id "
        "WHERE o.status = 'x' AND o.created_at >= now() - interval '1 day' ORDER BY o.created_at DESC LIMIT 5"
    ) == {
        ("demo.order_items", "order_id", "join"),
        ("demo.orders", "id", "join"),
        ("demo.orders", "status", "eq"),
        ("demo.orders", "created_at", "range"),
        ("demo.orders", "created_at", "order"),
    }
    assert uses("SELECT * FROM t WHERE a IN (1, 2) AND b BETWEEN 1 AND 9 AND c IS NULL AND d = ANY($1)") == {
        ("t", "a", "in"),
        ("t", "b", "range"),
        ("t", "c", "null"),
        ("t", "d", "in"),
    }
    assert uses("SELECT * FROM t WHERE a = b AND lower(e) = 'x' AND f <> 3") == set()  # nothing indexable
    assert uses("UPDATE s.t SET a = 1 WHERE id = 5") == {("s.t", "id", "eq")}
    assert uses("DELETE FROM t USING u WHERE t.x = u.y") == {("t", "x", "join"), ("u", "y", "join")}


def test_ctes_subqueries_and_ambiguous_columns():
    assert uses("WITH c AS (SELECT * FROM t WHERE q = 1) SELECT * FROM c WHERE c.a = 1") == {("t", "q", "eq")}
    assert uses("SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.z = 3)") == {
        ("u", "k", "join"),
        ("t", "k", "join"),
        ("u", "z", "eq"),
    }
    # unqualified with two tables in scope: resolved against the catalog's columns
    text = "SELECT * FROM a, b WHERE a.x = b.y AND z = 1"
    assert ("a", "z", "eq") in uses(text, columns={"a": {"x", "z"}, "b": {"y"}})
    assert (None, "z", "eq") in uses(text, columns={"a": {"z"}, "b": {"z"}})  # still ambiguous


def test_index_candidates_follow_the_query_shape():
    def cands(text: str) -> set[tuple]:
        return {(c.table, c.columns) for c in index_candidates(parse_query(text))}

    assert cands("SELECT * FROM t WHERE email = 'x'") == {("t", ("email",))}
    assert cands("SELECT * FROM t WHERE status = 'x' ORDER BY created_at DESC LIMIT 20") == {
        ("t", ("status",)),
        ("t", ("created_at",)),
        ("t", ("status", "created_at")),
    }
    assert cands("SELECT * FROM t WHERE a = 1 AND b = 2 AND c > 3") == {
        ("t", ("a",)),
        ("t", ("b",)),
        ("t", ("c",)),
        ("t", ("a", "b")),
        ("t", ("a", "b", "c")),
    }
    assert cands("SELECT * FROM t WHERE a = 1 AND b = 2 AND c = 3 AND d = 4") >= {("t", ("a", "b", "c"))}
    assert all(len(c[1]) <= 3 for c in cands("SELECT * FROM t WHERE a = 1 AND b = 2 AND c = 3 AND d = 4"))


# --------------------------------------------------------------------------------------------- statistics


def log_frame() -> pl.DataFrame:
    times = [10.0, 20.0, 30.0, 40.0, 1000.0]
    return pl.DataFrame(
        {
            "query": [f"SELECT * FROM t WHERE id = {i}" for i in range(5)] + ["SELECT * FROM u WHERE k = 1"],
            "execution_time_ms": times + [2000.0],
            "rows_returned": [1, 1, 1, 1, 1, 3],
            "logged_at": [T0 + timedelta(minutes=i) for i in range(6)],
        },
        schema_overrides={"logged_at": pl.Datetime("us", "UTC")},
    )


def test_query_stats_per_fingerprint():
    out, bad, parsed = fingerprint_queries(log_frame())
    stats = query_stats(out, parsed)
    t = stats.filter(pl.col("tables") == "t").row(0, named=True)
    assert (t["calls"], t["total_ms"], t["mean_ms"], t["max_ms"], t["rows"]) == (5, 1100.0, 220.0, 1000.0, 5)
    assert t["p95_ms"] == pytest.approx(808.0)  # linear interpolation, as percentile_cont: 40 + 0.8 * 960
    assert t["example_query"] == "SELECT * FROM t WHERE id = 2"  # the call closest to the median (30 ms)
    assert t["normalized_query"] == "SELECT * FROM t WHERE id = $1"
    assert stats["fingerprint"][0] == out["fingerprint"][5]  # ordered by total time


def test_new_slow_fingerprints_are_flagged_once_known():
    out, _, parsed = fingerprint_queries(log_frame())
    stats = query_stats(out, parsed)
    fresh = mark_new_fingerprints(stats, {}, T0, slow_ms=1000)
    assert dict(zip(fresh["tables"], fresh["is_new"], strict=True)) == {"u": True, "t": False}  # t: p95 < 1 s
    assert dict(zip(fresh["tables"], fresh["is_slow"], strict=True)) == {"u": True, "t": False}
    u_fp = fresh.filter(pl.col("tables") == "u")["fingerprint"][0]
    # seen in an earlier window: not new; seen first in this window (a re-run): still new
    assert not mark_new_fingerprints(stats, {u_fp: T0 - timedelta(days=3)}, T0, 1000).filter(
        pl.col("tables") == "u"
    )["is_new"][0]
    assert mark_new_fingerprints(stats, {u_fp: T0 + timedelta(minutes=5)}, T0, 1000).filter(
        pl.col("tables") == "u"
    )["is_new"][0]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # PG 12 and older names
        (
            {"userid", "dbid", "queryid", "query", "calls", "total_time", "rows", "blk_read_time"},
            {
                "total_exec_ms": "total_time",
                "blk_read_ms": "blk_read_time",
                "toplevel": None,
                "stats_since": None,
            },
        ),
        # PG 13-16
        (
            {
                "userid",
                "dbid",
                "toplevel",
                "queryid",
                "query",
                "calls",
                "total_exec_time",
                "total_plan_time",
                "rows",
                "blk_read_time",
            },
            {
                "total_exec_ms": "total_exec_time",
                "blk_read_ms": "blk_read_time",
                "toplevel": "toplevel",
                "stats_since": None,
            },
        ),
        # PG 17-18
        (
            {
                "userid",
                "dbid",
                "toplevel",
                "queryid",
                "query",
                "calls",
                "total_exec_time",
                "total_plan_time",
                "rows",
                "shared_blk_read_time",
                "stats_since",
            },
            {
                "total_exec_ms": "total_exec_time",
                "blk_read_ms": "shared_blk_read_time",
                "toplevel": "toplevel",
                "stats_since": "stats_since",
            },
        ),
    ],
)
def test_pg_stat_statements_column_renames(columns, expected):
    mapping = statements_columns(columns)
    assert {k: mapping[k] for k in expected} == expected


def test_pg_stat_statements_without_required_columns_is_refused():
    with pytest.raises(ValueError, match="total_exec_ms"):
        statements_columns({"userid", "dbid", "queryid", "query", "calls", "rows"})


def snap(rows: list[tuple]) -> pl.DataFrame:
    """(queryid, calls, total_exec_ms, stats_since) rows."""
    return pl.DataFrame(
        {
            "userid": [10] * len(rows),
            "dbid": [1] * len(rows),
            "queryid": [r[0] for r in rows],
            "toplevel": [True] * len(rows),
            "calls": [r[1] for r in rows],
            "total_exec_ms": [r[2] for r in rows],
            "total_plan_ms": [0.0] * len(rows),
            "rows": [r[1] for r in rows],
            "shared_blks_hit": [0] * len(rows),
            "shared_blks_read": [0] * len(rows),
            "blk_read_ms": [0.0] * len(rows),
            "stats_since": [r[3] for r in rows],
            "query": [f"SELECT {r[0]}" for r in rows],
        },
        schema_overrides={"stats_since": pl.Datetime("us", "UTC")},
    )


def test_statement_counters_are_diffed_per_window():
    before = snap([(1, 10, 100.0, T0), (2, 5, 50.0, T0), (3, 7, 70.0, T0), (4, 3, 30.0, T0)])
    after = snap(
        [
            (1, 15, 160.0, T0),  # 5 more calls
            (2, 2, 20.0, T0),  # went down: reset/evicted since; the current values are the window's
            (3, 7, 70.0, T0),  # no new calls: dropped
            (4, 4, 40.0, T0 + timedelta(hours=1)),  # re-entered (stats_since moved): 4 calls in the window
            (5, 1, 9.0, T0),  # new entry
        ]
    )
    delta = diff_statements(before, after)
    got = {r["queryid"]: (r["calls"], r["total_exec_ms"], r["mean_ms"]) for r in delta.iter_rows(named=True)}
    assert got == {1: (5, 60.0, 12.0), 2: (2, 20.0, 10.0), 4: (4, 40.0, 10.0), 5: (1, 9.0, 9.0)}
    assert (delta["calls"] > 0).all()
    assert diff_statements(before, after, reset=True)["calls"].sum() == 15 + 2 + 7 + 4 + 1
    assert diff_statements(None, after)["calls"].sum() == 29


# --------------------------------------------------------------------------------------------- indexes


def ix(name: str, cols: tuple, table: str = "t", **kw) -> ExistingIndex:
    return ExistingIndex(
        schema="s", table=table, name=name, method=kw.pop("method", "btree"), columns=cols, **kw
    )


def test_an_existing_index_covers_its_leading_prefix_only():
    existing = [ix("t_a_b", ("a", "b"))]
    assert covering_index(IndexCandidate("s.t", ("a",)), existing) is not None
    assert covering_index(IndexCandidate("s.t", ("a", "b")), existing) is not None
    assert covering_index(IndexCandidate("s.t", ("b",)), existing) is None
    assert covering_index(IndexCandidate("s.t", ("a", "b", "c")), existing) is None
    assert covering_index(IndexCandidate("s.u", ("a",)), existing) is None
    for other in (
        ix("p", ("a",), predicate="(a > 0)"),
        ix("v", ("a",), valid=False),
        ix("h", ("a",), method="hash"),
    ):
        assert covering_index(IndexCandidate("s.t", ("a",)), [other]) is None


def test_dexter_rule_keeps_only_big_savings_on_costly_queries():
    a, ab = IndexCandidate("s.t", ("a",)), IndexCandidate("s.t", ("a", "b"))
    assert choose_index("f", 80.0, {a: 1.0}, SETTINGS).candidate is None  # cost < 100: not worth it
    assert choose_index("f", 1000.0, {a: 600.0}, SETTINGS).candidate is None  # saves 40 %
    best = choose_index("f", 1000.0, {a: 100.0, ab: 40.0}, SETTINGS)
    assert (best.candidate, best.saving_pct) == (ab, pytest.approx(96.0))
    tie = choose_index("f", 1000.0, {a: 40.2, ab: 40.0}, SETTINGS)  # within 1 %: fewer columns
    assert tie.candidate == a


def test_advice_is_folded_into_a_wider_index_and_ranked_by_time_saved():
    a, ab, c = (
        IndexCandidate("s.t", ("a",)),
        IndexCandidate("s.t", ("a", "b")),
        IndexCandidate("s.u", ("c",)),
    )
    verdicts = [
        IndexVerdict("q1", 1000.0, a, 100.0, "hypopg", ""),
        IndexVerdict("q2", 1000.0, ab, 50.0, "hypopg", ""),
        IndexVerdict("q3", 500.0, c, 5.0, "hypopg", ""),
        IndexVerdict("q4", 500.0, None, None, "hypopg", "too cheap"),
    ]
    merged = merge_index_advice(verdicts)
    assert {v.fingerprint: v.candidate for v in merged} == {"q1": ab, "q2": ab, "q3": c, "q4": None}
    refused = merge_index_advice(verdicts, refit=lambda wide, members: None)  # the planner says no
    assert {v.fingerprint: v.candidate for v in refused}["q1"] == a
    ranked = rank_index_advice(merged, {"q1": (10, 100.0), "q2": (1, 100.0), "q3": (1000, 10.0)})
    assert [r["candidate"] for r in ranked] == [c, ab]
    assert ranked[0]["saved_ms"] == pytest.approx(1000 * 10.0 * 0.99)
    assert ranked[1]["saved_ms"] == pytest.approx(10 * 100.0 * 0.9 + 1 * 100.0 * 0.95)


def test_index_names_fit_postgres_and_identifiers_are_quoted():
    long = IndexCandidate(
        "app.a_really_long_table_name_for_testing", ("first_long_column_name", "second_col_x")
    )
    assert len(index_name(long).encode()) <= 63
    assert index_name(long) != index_name(IndexCandidate(long.table, ("first_long_column_name", "other")))
    odd = IndexCandidate("My Schema.Order", ("user", "Created At"))
    assert (
        odd.definition("ix") == 'CREATE INDEX CONCURRENTLY ix ON "My Schema"."Order" ("user", "Created At")'
    )
    assert candidate_from_key(odd.key) == odd


def test_duplicate_indexes_follow_pghero_rules():
    indexes = [
        ix("t_pkey", ("id",), primary=True, unique=True, backs_constraint=True, scans=100),
        ix("t_id_idx", ("id",), scans=0),  # same as the primary key: drop
        ix("t_a", ("a",), scans=3),  # prefix of t_a_b: drop
        ix("t_a_b", ("a", "b"), scans=9),
        ix("t_b_1", ("b",), scans=0),  # identical pair: the used one stays
        ix("t_b_2", ("b",), scans=5),
        ix("t_c_uniq", ("c",), unique=True, scans=0),  # enforces uniqueness: stays
        ix("t_c_d", ("c", "d"), scans=0),
        ix("t_e_part", ("e",), predicate="(e > 0)"),  # different predicate: not a duplicate
        ix("t_e", ("e",)),
        ix("t_f_desc", ("f",), options=("3",)),  # DESC NULLS FIRST vs ASC: not identical
        ix("t_f", ("f",), options=("0",)),
    ]
    dropped = {r.key for r in duplicate_index_findings(indexes)}
    assert dropped == {"duplicate_index:s.t_id_idx", "duplicate_index:s.t_a", "duplicate_index:s.t_b_1"}


def test_unused_indexes_spare_constraints_and_flag_invalid_ones():
    indexes = [
        ix("used", ("a",), scans=4),
        ix("unused", ("b",), scans=0, size_bytes=8192),
        ix("uniq", ("c",), scans=0, unique=True),
        ix("pk", ("id",), scans=0, primary=True, unique=True, backs_constraint=True),
        ix("broken", ("d",), scans=0, valid=False),
    ]
    recs = {r.key: r for r in unused_index_findings(indexes, stats_age_days=30, settings=SETTINGS)}
    assert set(recs) == {"unused_index:s.unused", "unused_index:s.broken"}
    assert recs["unused_index:s.unused"].priority == "medium"
    assert recs["unused_index:s.broken"].priority == "high"
    assert recs["unused_index:s.unused"].action_sql == "DROP INDEX CONCURRENTLY IF EXISTS s.unused;"
    young = {r.key for r in unused_index_findings(indexes, stats_age_days=0.5, settings=SETTINGS)}
    assert young == {"unused_index:s.broken"}  # half a day of statistics: too short to call anything unused
    assert not unused_index_findings(indexes, 30, SETTINGS, exclude=["s.unused", "s.broken"])


# --------------------------------------------------------------------------------------------- maintenance


def test_autovacuum_formulas():
    assert vacuum_threshold(100_000, 50, 0.2) == 20_050
    assert vacuum_threshold(-1, 50, 0.2) == 50  # never analyzed: reltuples -1 counts as 0
    assert vacuum_threshold(1e9, 50, 0.2, max_threshold=100_000_000) == 100_000_000  # PG 18 cap
    assert vacuum_threshold(1e9, 50, 0.2, max_threshold=-1) == pytest.approx(2e8 + 50)  # cap disabled
    assert analyze_threshold(100_000, 50, 0.1) == 10_050
    assert insert_vacuum_threshold(100_000, 1000, 0.2) == 21_000
    assert insert_vacuum_threshold(100_000, -1, 0.2) is None


def table_row(**kw) -> dict:
    row = {
        "schema_name": "s",
        "table_name": "t",
        "reltuples": 100_000.0,
        "n_live_tup": 100_000,
        "n_dead_tup": 0,
        "n_mod_since_analyze": 0,
        "n_ins_since_vacuum": 0,
        "last_vacuum": None,
        "last_autovacuum": T0,
        "last_analyze": None,
        "last_autoanalyze": T0,
        "autovacuum_enabled": True,
        "vac_threshold": 50.0,
        "vac_scale": 0.2,
        "vac_max_threshold": 1e8,
        "ins_threshold": 1000.0,
        "ins_scale": 0.2,
        "ana_threshold": 50.0,
        "ana_scale": 0.1,
        "xid_age": 1000,
        "freeze_max_age": 2e8,
    }
    row.update(kw)
    return row


def findings(*rows: dict, now: datetime = T0 + timedelta(hours=1)) -> dict[str, Recommendation]:
    frame = pl.DataFrame(
        list(rows),
        schema_overrides={
            c: pl.Datetime("us", "UTC")
            for c in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze")
        },
    )
    return {r.key: r for r in maintenance_findings(frame, now, SETTINGS)}


def test_vacuum_and_analyze_advice_uses_the_trigger_formula():
    assert findings(table_row(n_dead_tup=20_000)) == {}  # under 20,050: autovacuum's business
    over = findings(table_row(n_dead_tup=20_100))
    assert over["vacuum:s.t"].priority == "medium"  # over, vacuumed an hour ago: autovacuum catching up
    assert over["vacuum:s.t"].action_sql == "VACUUM (ANALYZE) s.t;"
    stale = findings(table_row(n_dead_tup=20_100, last_autovacuum=T0 - timedelta(days=10)))
    assert stale["vacuum:s.t"].priority == "high"
    off = findings(table_row(n_dead_tup=20_100, autovacuum_enabled=False))
    assert off["vacuum:s.t"].priority == "high" and "disabled" in off["vacuum:s.t"].description
    assert findings(table_row(n_dead_tup=500, reltuples=100.0, n_live_tup=100)) == {}  # tiny: ignored
    assert "analyze:s.t" in findings(table_row(n_mod_since_analyze=10_100))
    assert "analyze:s.t" not in findings(table_row(n_mod_since_analyze=10_000))
    never = findings(table_row(last_analyze=None, last_autoanalyze=None))
    assert never["analyze:s.t"].priority == "high"
    inserts = findings(table_row(n_ins_since_vacuum=30_000, last_autovacuum=None))
    assert inserts["vacuum:s.t"].priority == "low"


def test_wraparound_risk():
    def risk(age: int, database_age: int | None = None) -> dict:
        frame = pl.DataFrame([table_row(xid_age=age)])
        db = {"name": "app", "xid_age": database_age} if database_age is not None else None
        return {r.key: r.priority for r in wraparound_findings(frame, 2e8, db, SETTINGS)}

    assert risk(100_000_000) == {}
    assert risk(160_000_000) == {"wraparound:s.t": "medium"}
    assert risk(210_000_000) == {"wraparound:s.t": "high"}
    assert risk(1_000, database_age=2_100_000_000) == {"wraparound:database:app": "high"}


def test_cache_and_connection_pressure():
    def recs(**kw) -> dict:
        base = {
            "name": "app",
            "blks_hit": 990_000,
            "blks_read": 10_000,
            "connections": 10,
            "max_connections": 100,
        }
        return {r.key: r.priority for r in resource_findings(DatabaseStats(**{**base, **kw}), SETTINGS)}

    assert recs() == {}  # exactly 99 %
    assert recs(blks_read=20_000) == {"cache:database:app": "medium"}
    assert recs(blks_read=100_000) == {"cache:database:app": "high"}
    assert recs(blks_hit=900, blks_read=100) == {}  # too little traffic to judge
    assert recs(connections=70) == {"connections:database:app": "medium"}  # 70 of 97 usable
    assert recs(connections=90) == {"connections:database:app": "high"}


# --------------------------------------------------------------------------------------------- the report


def rec_row(
    key: str, kind: str, priority: str, pct: float | None = None, table: str | None = None, **kw
) -> dict:
    return {
        "recommendation_key": key,
        "recommendation_type": kind,
        "priority": priority,
        "table_name": table,
        "description": key,
        "action_sql": None,
        "estimated_improvement_pct": pct,
        "implemented": False,
        "metadata": kw.get("metadata", {}),
        **{k: v for k, v in kw.items() if k != "metadata"},
    }


def test_optimize_system_has_the_seed_shape():
    report = assemble_optimizations(
        [
            rec_row("query_optimization:a", "query_optimization", "high"),
            *[rec_row(f"query_optimization:{i}", "query_optimization", "medium") for i in "bcde"],
            rec_row(
                "missing_index:s.t(a)",
                "missing_index",
                "high",
                80.0,
                "s.t",
                metadata={"verification": "hypopg"},
            ),
            rec_row("missing_index:s.u(b)", "missing_index", "medium", 55.0, "s.u"),
            rec_row("missing_index:s.v(c)", "missing_index", "low", 60.0, "s.v"),
            rec_row("vacuum:s.t", "vacuum", "medium", 30.0, "s.t"),
            rec_row("analyze:s.w", "analyze", "medium", None, "s.w"),
            rec_row("cache:database:app", "cache", "low"),
            rec_row("unused_index:s.x", "unused_index", "low", implemented=True),  # done: not reported
        ]
    )
    assert set(report) == {"totalOptimizations", "optimizations", "estimatedImpact"}
    assert report["totalOptimizations"] == 4 == len(report["optimizations"])
    first = report["optimizations"][0]
    assert {"type", "priority", "description", "action", "impact"} <= set(first)
    assert (first["type"], first["priority"], first["description"]) == (
        "query_optimization",
        "high",
        "Found 5 slow queries",
    )
    by_type = {o["type"]: o for o in report["optimizations"]}
    assert by_type["indexing"]["description"].startswith("3 tables need indexes")
    assert by_type["indexing"]["impact"] == "Reduce query time by 55-80%"
    assert by_type["maintenance"]["description"] == "1 table needs VACUUM; 1 table needs ANALYZE"
    assert by_type["maintenance"]["action"] == "Run VACUUM ANALYZE"
    assert [o["priority"] for o in report["optimizations"]] == ["high", "high", "medium", "low"]
    assert report["estimatedImpact"] == "Significant performance improvement expected"
    assert assemble_optimizations([]) == {
        "totalOptimizations": 0,
        "optimizations": [],
        "estimatedImpact": "No optimizations needed: the system is well tuned",
    }


def test_stale_recommendations_are_implemented_or_obsolete():
    created = T0
    indexes = [ix("t_a_idx", ("a",)), ix("kept", ("k",))]
    tables = pl.DataFrame(
        [table_row(last_autovacuum=T0 + timedelta(hours=2))],
        schema_overrides={"last_autovacuum": pl.Datetime("us", "UTC")},
    )
    open_recs = [
        {
            "recommendation_key": "missing_index:s.t(a)",
            "recommendation_type": "missing_index",
            "created_at": created,
        },
        {
            "recommendation_key": "missing_index:s.t(z)",
            "recommendation_type": "missing_index",
            "created_at": created,
        },
        {
            "recommendation_key": "unused_index:s.gone",
            "recommendation_type": "unused_index",
            "created_at": created,
        },
        {
            "recommendation_key": "unused_index:s.kept",
            "recommendation_type": "unused_index",
            "created_at": created,
        },
        {
            "recommendation_key": "vacuum:s.t",
            "recommendation_type": "vacuum",
            "table_name": "s.t",
            "created_at": created,
        },
        {"recommendation_key": "cache:database:app", "recommendation_type": "cache", "created_at": created},
    ]
    implemented, obsolete = stale_recommendations(open_recs, indexes, tables)
    assert set(implemented) == {"missing_index:s.t(a)", "unused_index:s.gone", "vacuum:s.t"}
    assert set(obsolete) == {"missing_index:s.t(z)", "unused_index:s.kept", "cache:database:app"}
