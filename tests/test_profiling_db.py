"""Profiling against real Postgres: an under-indexed shop workload on the embedded PostgreSQL 18 (no HypoPG:
heuristic advice) and on Debian's PostgreSQL 15 with HypoPG (planner-verified advice, applied for real)."""

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator

import dagster as dg
import polars as pl
import psycopg
import pytest
from psycopg import sql

from autopilot_pipeline import cli
from autopilot_pipeline.defs.profiling import assets as A
from autopilot_pipeline.defs.profiling.resources import (
    AUTO_REMEDIATE_ENV,
    ProfilingConfig,
    ProfilingResource,
    auto_remediate_from,
)
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.postgres import migrate, urls
from autopilot_pipeline.profiling.indexes import IndexCandidate
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.catalog import explain_analyze_ms, hypopg_schema, read_indexes
from autopilot_pipeline.profiling.store.recommendations import (
    generate_recommendations,
    optimize_system,
    read_open_recommendations,
)
from autopilot_pipeline.profiling.store.remediation import create_index_concurrently, remediate
from autopilot_pipeline.profiling.store.slow_queries import (
    analyze_slow_queries,
    read_slow_queries,
    write_slow_queries,
)
from autopilot_pipeline.profiling.store.statements import (
    QueryStatsResult,
    collect_query_stats,
    statements_status,
)

from . import profiling_workload as w
from .conftest import TEMPLATE
from .extensions import require_extension
from .profiling_runs import materialize_target

EXPECTED = {f"missing_index:{s.missing[0]}({','.join(s.missing[1])})" for s in w.SHAPES if s.missing}
# Our small workload is fast; analyze every query (the defaults skip those under 10 ms) and call any
# verified saving high priority so remediation has work.
SETTINGS = ProfilingSettings(min_mean_ms=0.0, high_saved_ms=0.0)
ASSETS = [
    A.query_stats,
    A.table_statistics,
    A.slow_queries,
    A.performance_recommendations,
    A.remediation_audit,
]


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(urls.with_database(server_url, "postgres"), autocommit=True)


def _create(server_url: str, name: str, template: str | None = None) -> str:
    with _admin(server_url) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return urls.with_database(server_url, name)


def _drop(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _shop_template(server_url: str, name: str, from_template: str | None) -> Iterator[str]:
    url = _create(server_url, name, from_template)
    if from_template is None:
        migrate.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        w.build(conn)
    yield name
    _drop(server_url, name)


def _clone(server_url: str, template: str) -> Iterator[str]:
    name = f"shop_{uuid.uuid4().hex[:10]}"
    url = _create(server_url, name, template)
    yield url
    _drop(server_url, name)


@pytest.fixture(scope="module")
def shop18_template(pg_server: str) -> Iterator[str]:
    yield from _shop_template(pg_server, f"shop18_{uuid.uuid4().hex[:6]}", TEMPLATE)


@pytest.fixture
def shop18(pg_server: str, shop18_template: str) -> Iterator[str]:
    yield from _clone(pg_server, shop18_template)


@pytest.fixture(scope="module")
def shop15_template(pg15_server: str) -> Iterator[str]:
    require_extension(pg15_server, "hypopg")  # the PG 15 tests are the HypoPG ones
    yield from _shop_template(pg15_server, "shop15_template", None)


@pytest.fixture
def shop15(pg15_server: str, shop15_template: str) -> Iterator[str]:
    yield from _clone(pg15_server, shop15_template)


def materialize(url: str, **profiling: object) -> dg.ExecuteInProcessResult:
    resources = {
        "postgres": PostgresResource(database_url=url),
        "profiling": ProfilingResource(
            settings=ProfilingConfig(min_mean_ms=0.0, high_saved_ms=0.0, **profiling)  # type: ignore[arg-type]
        ),
    }
    return materialize_target(ASSETS, resources)


def recommendations(conn: psycopg.Connection) -> dict[str, dict]:
    return {r["recommendation_key"]: r for r in read_open_recommendations(conn, include_implemented=True)}


def prepare(url: str) -> psycopg.Connection:
    """A connection to a shop clone where the workload (and the bad texts) has run and been logged."""
    conn = psycopg.connect(url, autocommit=True)
    w.run_workload(conn)
    w.log_bad_queries(conn)
    return conn


# --------------------------------------------------------------------------------------------- PG 18, heuristic


def test_profiling_assets_find_the_missing_indexes_and_skip_bad_sql(shop18):
    with prepare(shop18) as conn:
        slow = "SELECT count(*) FROM shop.orders WHERE total_cents >= 0"  # slow, and no index can help it
        conn.execute("SELECT automation.log_query_performance(%s, 2500, 1, 'cron')", (slow,))
        result = materialize(shop18)
        assert result.success
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        texts = checks["valid_query_texts"]
        assert not texts.passed  # WARN: the bad texts were counted and skipped, the run went on
        counts = {k: v.value for k, v in texts.metadata.items() if k.startswith("skipped_")}
        assert counts == {"skipped_odd_encoding": 3, "skipped_too_long": 1, "skipped_unparseable": 3}
        assert checks["pg_stat_statements_available"].passed
        assert not checks["no_new_slow_queries"].passed  # the 2.5 s query was never seen before
        assert conn.execute("SELECT to_regclass('shop.orders') IS NOT NULL").fetchone()[0]  # never executed

        recs = recommendations(conn)
        missing = {k: r for k, r in recs.items() if r["recommendation_type"] == "missing_index"}
        assert set(missing) == EXPECTED
        for r in missing.values():  # no HypoPG here: labelled heuristic, never high, never auto-applied
            assert r["metadata"]["verification"] == "heuristic"
            assert "heuristic" in r["description"]
            assert r["priority"] != "high"
            assert r["action_sql"].startswith("CREATE INDEX CONCURRENTLY")
        # covered by products (sku) and customers (tier, country): nothing recommended there
        assert not [
            k
            for k in missing
            if k.startswith(
                (
                    "missing_index:shop.products",
                    "missing_index:shop.customers(t",
                    "missing_index:shop.customers(c",
                )
            )
        ]

        indexes = {ix.name: ix for ix in read_indexes(conn) if ix.schema == "shop"}
        sku_scans = {n: indexes[n].scans for n in ("products_sku_idx", "products_sku_idx2")}
        dropped_sku = min(sku_scans, key=lambda n: (sku_scans[n], n != "products_sku_idx2"))
        duplicates = {k for k, r in recs.items() if r["recommendation_type"] == "duplicate_index"}
        assert duplicates == {
            "duplicate_index:shop.products_category_idx",
            f"duplicate_index:shop.{dropped_sku}",
        }
        # never scanned, but the statistics are seconds old (< unused_min_stats_days): not proposed yet
        assert "unused_index:shop.products_name_idx" not in recs
        (review,) = [r for r in recs.values() if r["recommendation_type"] == "query_optimization"]
        assert review["metadata"]["is_new"] and review["description"].startswith("New slow query")
        assert conn.execute("SELECT count(*) FROM automation.remediation_audit").fetchone()[0] == 0

        analyzed = read_slow_queries(conn)
        assert set(analyzed["index_key"].drop_nulls()) == EXPECTED
        table_health = conn.execute(
            "SELECT table_name, n_live_tup FROM automation.table_health WHERE schema_name = 'shop'"
        ).fetchall()
        assert {t for t, _ in table_health} == {"customers", "orders", "order_items", "events", "products"}

        ids = {k: r["id"] for k, r in recs.items()}
        assert materialize(shop18).success  # a rerun updates in place: same keys, same rows
        again = recommendations(conn)
        assert {k: r["id"] for k, r in again.items() if k in ids} == {k: ids[k] for k in again if k in ids}
        assert {k for k in again if k.startswith("missing_index")} == EXPECTED
        assert conn.execute(
            "SELECT count(*) = count(DISTINCT recommendation_key) FROM automation.performance_recommendations"
        ).fetchone()[0]


def test_pg_stat_statements_windows_are_diffs_and_survive_a_reset(shop18):
    shape = "SELECT count(*) FROM shop.orders WHERE customer_id = $1"

    def window(conn: psycopg.Connection) -> QueryStatsResult:
        with conn.transaction():
            return collect_query_stats(conn, SETTINGS, store_snapshot=True)

    def calls(result: QueryStatsResult) -> int:
        rows = result.stats.filter(
            (pl.col("source") == "pg_stat_statements") & (pl.col("normalized_query") == shape)
        )
        return int(rows["calls"].sum())

    with psycopg.connect(shop18, autocommit=True) as conn:
        status = statements_status(conn)
        assert status.available
        assert (
            status.columns["total_exec_ms"],
            status.columns["blk_read_ms"],
            status.columns["stats_since"],
        ) == ("total_exec_time", "shared_blk_read_time", "stats_since")
        first = window(conn)
        assert first.statements_read > 0
        for customer in range(7):
            conn.execute("SELECT count(*) FROM shop.orders WHERE customer_id = %s", (customer,))
        assert calls(window(conn)) == 7
        assert calls(window(conn)) == 0  # nothing new since the last snapshot
        dbid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
        for customer in range(12):
            conn.execute("SELECT count(*) FROM shop.orders WHERE customer_id = %s", (customer,))
        conn.execute("SELECT pg_stat_statements_reset(0, %s, 0)", (dbid,))  # counters restart from zero
        for customer in range(3):
            conn.execute("SELECT count(*) FROM shop.orders WHERE customer_id = %s", (customer,))
        after_reset = window(conn)
        assert calls(after_reset) == 3
        assert (after_reset.stats["calls"] > 0).all() and (after_reset.stats["total_ms"] >= 0).all()

        # a statement only pg_stat_statements saw ($1, no literals) is planned generically (GENERIC_PLAN)
        analysis = analyze_slow_queries(conn, after_reset.stats, SETTINGS)
        row = analysis.frame.filter(pl.col("normalized_query") == shape).row(0, named=True)
        assert row["plan_cost"] is not None and row["index_key"] == "missing_index:shop.orders(customer_id)"


def test_without_pg_stat_statements_the_app_log_still_works(shop18):
    with prepare(shop18) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
        status = statements_status(conn)
        assert not status.available and "CREATE EXTENSION pg_stat_statements" in status.message
        result = materialize(shop18)
        assert result.success
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert not checks["pg_stat_statements_available"].passed
        assert "shared_preload_libraries" in checks["pg_stat_statements_available"].description
        missing = {k for k, r in recommendations(conn).items() if r["recommendation_type"] == "missing_index"}
        assert missing == EXPECTED


def test_vacuum_and_analyze_advice_and_its_resolution(shop18):
    with psycopg.connect(shop18, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE shop.audit_log WITH (autovacuum_enabled = false) AS "
            "SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 20000) g"
        )
        conn.execute("ANALYZE shop.audit_log")
        conn.execute("DELETE FROM shop.audit_log WHERE id % 5 <> 0")  # 16,000 dead > 50 + 0.2 × 20,000
        conn.execute("SELECT pg_stat_force_next_flush()")
        generate_recommendations(conn, SETTINGS)
        recs = recommendations(conn)
        assert recs["vacuum:shop.audit_log"]["priority"] == "high"  # autovacuum is off for it
        assert "disabled" in recs["vacuum:shop.audit_log"]["description"]
        assert recs["analyze:shop.audit_log"]["action_sql"] == "ANALYZE shop.audit_log;"
        conn.execute("VACUUM (ANALYZE) shop.audit_log")
        run = generate_recommendations(conn, SETTINGS)
        assert {"vacuum:shop.audit_log", "analyze:shop.audit_log"} <= set(run.implemented)
        done = recommendations(conn)
        assert done["vacuum:shop.audit_log"]["implemented"] and done["analyze:shop.audit_log"]["implemented"]


def test_a_failed_concurrent_build_leaves_no_invalid_index(shop18):
    def invalid_indexes(conn: psycopg.Connection) -> list:
        return conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid "
            "WHERE c.relnamespace = 'shop'::regnamespace AND NOT x.indisvalid"
        ).fetchall()

    with psycopg.connect(shop18, autocommit=True) as conn:
        # 1. the build itself fails (duplicate keys for a unique index) after the index entered the catalog
        built = create_index_concurrently(conn, IndexCandidate("shop.orders", ("status",)), unique=True)
        assert not built.ok and "could not create unique index" in built.error
        assert built.cleaned_up and invalid_indexes(conn) == []

        # 2. a busy table: an open writing transaction makes the build wait, and lock_timeout cancels it
        blocker = psycopg.connect(shop18)
        blocker.execute("INSERT INTO shop.customers VALUES (50001, 'x@example.com', 'us', 'pro', now())")
        done = threading.Event()

        def release_when_cleanup_waits() -> None:
            with psycopg.connect(shop18, autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                while not done.is_set() and time.monotonic() < deadline:
                    waiting = watcher.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'DROP INDEX CONCURRENTLY%%' "
                        "AND wait_event_type = 'Lock'"
                    ).fetchone()
                    if waiting:
                        break
                    time.sleep(0.05)
            blocker.commit()

        thread = threading.Thread(target=release_when_cleanup_waits)
        thread.start()
        try:
            built = create_index_concurrently(
                conn,
                IndexCandidate("shop.customers", ("email",)),
                lock_timeout_ms=300,
                cleanup_lock_timeout_ms=60_000,
            )
        finally:
            done.set()
            thread.join()
            blocker.close()
        assert not built.ok and "lock timeout" in built.error
        assert built.cleaned_up and invalid_indexes(conn) == []
        assert conn.execute("SELECT to_regclass('shop.customers_email_idx')").fetchone()[0] is None

        with conn.transaction(), pytest.raises(RuntimeError, match="outside a transaction"):
            create_index_concurrently(conn, IndexCandidate("shop.customers", ("email",)))


def test_cli_prints_the_optimize_system_json(shop18, monkeypatch, capsys):
    with prepare(shop18):
        pass
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", shop18)
    assert cli.main(["optimize", "--json", "--apply", "--min-mean-ms", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"totalOptimizations", "optimizations", "estimatedImpact"} <= set(report)
    assert report["remediation"] == []  # heuristic advice is never applied automatically
    types = {o["type"] for o in report["optimizations"]}
    assert {"indexing", "index_cleanup"} <= types
    for opt in report["optimizations"]:
        assert {"type", "priority", "description", "action", "impact"} <= set(opt)
    assert cli.main(["optimize", "--lookback-hours", "0"]) == 2


# --------------------------------------------------------------------------------------------- PG 15 + HypoPG


def test_hypopg_verifies_the_missing_indexes_on_postgres_15(shop15):
    with prepare(shop15) as conn:
        status = statements_status(conn)
        assert (status.columns["blk_read_ms"], status.columns["stats_since"]) == ("blk_read_time", None)
        assert hypopg_schema(conn) is not None
        # a statement only pg_stat_statements saw: PG 15 has no GENERIC_PLAN, a generic prepared plan is used
        for customer in range(5):
            conn.execute("SELECT id FROM shop.orders WHERE customer_id = %s", (customer,))
        # (status) alone would do for this one, but (status, created_at) serves it too: one index, not two
        narrow = "SELECT count(*) FROM shop.orders WHERE status = 'cancelled'"
        conn.execute("SELECT automation.log_query_performance(%s, 9.5, 1, 'api')", (narrow,))
        with conn.transaction():
            stats = collect_query_stats(conn, SETTINGS, store_snapshot=True)
        analysis = analyze_slow_queries(conn, stats.stats, SETTINGS)
        write_slow_queries(conn, analysis)
        assert analysis.hypopg
        generate_recommendations(conn, SETTINGS)
        missing = {
            k: r for k, r in recommendations(conn).items() if r["recommendation_type"] == "missing_index"
        }
        assert set(missing) == EXPECTED | {"missing_index:shop.orders(customer_id)"}
        for r in missing.values():
            meta = r["metadata"]
            assert meta["verification"] == "hypopg" and r["priority"] == "high"
            assert r["estimated_improvement_pct"] >= 50.0
            assert meta["plan_cost_after"] <= 0.5 * meta["plan_cost_before"]
        folded = analysis.frame.filter(pl.col("example_query") == narrow).row(0, named=True)
        assert folded["index_key"] == "missing_index:shop.orders(status,created_at)"
        assert "shared index" in folded["analysis"]
        covered = analysis.frame.filter(pl.col("normalized_query").str.contains("WHERE sku|WHERE tier"))
        assert covered.height == 2 and covered["index_key"].is_null().all()


def remediation_resources(url: str) -> dict:
    """As the code location binds them: the opt-in switch read from the environment once, here."""
    settings = ProfilingConfig(auto_remediate=auto_remediate_from(os.environ))
    return {"postgres": PostgresResource(database_url=url), "profiling": ProfilingResource(settings=settings)}


def metadata(result: dg.ExecuteInProcessResult, key: str) -> object:
    (event,) = result.get_asset_materialization_events()
    return event.materialization.metadata[key].value


def test_applying_verified_indexes_makes_their_queries_faster(shop15, monkeypatch):
    with prepare(shop15) as conn:
        optimize_system(conn, SETTINGS)
        queries = {s.missing: s.templates[0] for s in w.SHAPES if s.missing}
        before = {m: explain_analyze_ms(conn, q) for m, q in queries.items()}

        shop_indexes = {ix.name for ix in read_indexes(conn) if ix.schema == "shop"}

        monkeypatch.delenv(AUTO_REMEDIATE_ENV, raising=False)
        dry = materialize_target([A.remediation_audit], remediation_resources(shop15))
        assert metadata(dry, "mode") == "dry_run" and metadata(dry, "dry_run") == len(EXPECTED)
        assert {ix.name for ix in read_indexes(conn) if ix.schema == "shop"} == shop_indexes  # nothing built

        monkeypatch.setenv(AUTO_REMEDIATE_ENV, "1")  # opt in
        applied = materialize_target([A.remediation_audit], remediation_resources(shop15))
        assert metadata(applied, "mode") == "apply" and metadata(applied, "applied") == len(EXPECTED)
        audit = conn.execute(
            "SELECT mode, result, actor, db_user, finished_at IS NOT NULL, details ->> 'index' "
            "FROM automation.remediation_audit ORDER BY id"
        ).fetchall()
        assert [a[:2] for a in audit] == [("dry_run", "dry_run")] * len(EXPECTED) + [
            ("apply", "applied")
        ] * len(EXPECTED)
        assert all(a[2].startswith("dagster run ") and a[3] == "postgres" and a[4] for a in audit)
        valid = {f"shop.{ix.name}" for ix in read_indexes(conn) if ix.valid and ix.schema == "shop"}
        assert {a[5] for a in audit if a[1] == "applied"} <= valid

        conn.execute("ANALYZE shop.customers, shop.orders, shop.order_items, shop.events")
        after = {m: explain_analyze_ms(conn, q) for m, q in queries.items()}
        for missing, ms in after.items():
            assert ms < before[missing], f"{missing}: {before[missing]:.2f} ms -> {ms:.2f} ms"

        recs = recommendations(conn)
        assert all(recs[k]["implemented"] and recs[k]["resolution"] == "auto_applied" for k in EXPECTED)
        w.run_workload(conn)
        optimize_system(conn, SETTINGS)  # a rerun recognizes them: nothing reopened, nothing duplicated
        again = recommendations(conn)
        assert all(again[k]["implemented"] for k in EXPECTED)
        assert not [
            k
            for k, r in again.items()
            if r["recommendation_type"] == "missing_index" and not r["implemented"]
        ]
        assert remediate(conn, apply=True, actor="test") == []


def test_profiling_is_defined_for_dagster():
    from autopilot_pipeline import runner

    defs = runner.load_definitions()
    keys = {s.key.to_user_string() for s in defs.resolve_all_asset_specs() if s.group_name == "profiling"}
    assert keys == {
        "automation/query_stats",
        "automation/table_statistics",
        "automation/slow_queries",
        "automation/performance_recommendations",
        "automation/remediation_audit",
    }
    assert defs.resolve_schedule_def("profiling_daily_schedule").cron_schedule == "20 3 * * *"
    assert defs.resolve_job_def("profiling_job") is not None
