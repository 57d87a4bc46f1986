"""Profiling per monitored target, for real: the pipeline's database (target ``default``, with a table of its
own) and a shop database ``shop_b`` with an under-indexed workload, two databases on one test server; a
third target points at a closed port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import psycopg
import pytest

from autopilot_pipeline import cli, runner
from autopilot_pipeline.defs import partitions
from autopilot_pipeline.defs.partitions import sync_targets
from autopilot_pipeline.defs.profiling.schedules import profiling_daily_schedule
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.integrations.prometheus_local import free_port
from autopilot_pipeline.postgres import targets
from autopilot_pipeline.profiling.store.recommendations import optimize_system
from autopilot_pipeline.profiling.store.remediation import remediate

from . import profiling_workload as w
from .conftest import _create_database, _drop_database
from .profiling_runs import materialize_target
from .test_profiling_db import (
    ASSETS,
    EXPECTED,
    ProfilingConfig,
    ProfilingResource,
    _clone,
    shop18_template,  # noqa: F401 - fixture
)

TABLES = (
    "automation.query_stats",
    "automation.table_statistics",
    "automation.slow_queries",
    "automation.performance_recommendations",
)


@pytest.fixture
def shop_b(pg_server: str, shop18_template: str, pg_url: str, monkeypatch) -> Iterator[str]:  # noqa: F811
    """``shop_b``: a clone of the shop workload's database, registered as a target of ``pg_url``."""
    for url in _clone(pg_server, shop18_template):
        monkeypatch.setenv("SHOP_B_URL", url)
        monkeypatch.setenv("DOWN_URL", f"postgresql://nobody:secret@127.0.0.1:{free_port()}/postgres")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            targets.add_target(conn, "shop_b", url_env="SHOP_B_URL")
            targets.add_target(conn, "down", url_env="DOWN_URL")
        yield url


def profile(pipeline_url: str, target: str) -> dg.ExecuteInProcessResult:
    resources = {
        "postgres": PostgresResource(database_url=pipeline_url),
        "profiling": ProfilingResource(settings=ProfilingConfig(min_mean_ms=0.0, high_saved_ms=0.0)),
    }
    return materialize_target(ASSETS, resources, target, raise_on_error=False)


def rows(conn: psycopg.Connection, table: str, target: str) -> list[tuple]:
    """Every row of ``target`` in ``table`` (without ids), sorted: equal lists mean untouched rows."""
    cur = conn.execute(f"SELECT * FROM {table} WHERE target = %s", (target,))  # noqa: S608 - fixed names
    names = [d.name for d in cur.description]
    return sorted(
        (
            tuple(str(v) for n, v in zip(names, r, strict=True) if n not in ("id", "target"))
            for r in cur.fetchall()
        ),
    )


def tables_of(conn: psycopg.Connection, target: str) -> set[str]:
    return {
        f"{s}.{t}"
        for s, t in conn.execute(
            "SELECT schema_name, table_name FROM automation.table_statistics WHERE target = %s", (target,)
        ).fetchall()
    }


def test_profiling_a_target_reads_its_database_and_writes_rows_under_its_name(shop_b, pg_url, conn):
    conn.execute("CREATE TABLE public.default_only (id int PRIMARY KEY)")
    assert profile(pg_url, "default").success
    before = {table: rows(conn, table, "default") for table in TABLES}
    assert tables_of(conn, "default") >= {"public.default_only"}

    with psycopg.connect(shop_b, autocommit=True) as shop:
        w.run_workload(shop)
    result = profile(pg_url, "shop_b")
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["pg_stat_statements_available"].passed

    # shop_b's catalog and statements, under its name; nothing of the pipeline's own database
    shop_tables = tables_of(conn, "shop_b")
    assert {"shop.orders", "shop.customers", "shop.order_items"} <= shop_tables
    assert "public.default_only" not in shop_tables
    assert not {t for t in tables_of(conn, "default") if t.startswith("shop.")}
    statement_tables = {
        t
        for (tables,) in conn.execute(
            "SELECT tables FROM automation.query_stats WHERE target = 'shop_b' AND source = 'pg_stat_statements'"
        ).fetchall()
        for t in (tables or "").split(",")
    }
    assert "shop.orders" in statement_tables  # read from shop_b's pg_stat_statements (its dbid only)
    assert not conn.execute(
        "SELECT count(*) FROM automation.query_stats WHERE target = 'default' AND tables LIKE '%%shop.%%'"
    ).fetchone()[0]
    advice = {
        k
        for (k,) in conn.execute(
            "SELECT recommendation_key FROM automation.performance_recommendations "
            "WHERE target = 'shop_b' AND recommendation_type = 'missing_index'"
        ).fetchall()
    }
    assert advice == EXPECTED
    assert {table: rows(conn, table, "default") for table in TABLES} == before  # default's rows untouched
    # the seed's views still describe the pipeline's own database
    assert not conn.execute(
        "SELECT count(*) FROM automation.table_health WHERE schema_name = 'shop'"
    ).fetchone()[0]
    assert not conn.execute(
        "SELECT count(*) FROM automation.open_recommendations WHERE target <> 'default'"
    ).fetchone()[0]

    # the AI-ops optimizations of each target show that target's advice only
    shop_report = optimize_system(conn, refresh=False, target="shop_b")
    default_report = optimize_system(conn, refresh=False)
    assert "shop.orders" in str(shop_report["optimizations"])
    assert "shop." not in str(default_report["optimizations"])

    # a rerun replaces shop_b's copies instead of adding to them: they equal shop_b's own rows
    assert profile(pg_url, "shop_b").success
    with psycopg.connect(shop_b, autocommit=True) as shop:
        for table in ("automation.slow_queries", "automation.performance_recommendations"):
            assert rows(conn, table, "shop_b") == rows(shop, table, "default")
            assert rows(conn, table, "shop_b")
    assert len(rows(conn, "automation.table_statistics", "shop_b")) == 2 * len(shop_tables)


def test_remediation_here_never_builds_another_targets_advice(shop_b, pg_url, conn):
    with psycopg.connect(shop_b, autocommit=True) as shop:
        w.run_workload(shop)
    assert profile(pg_url, "shop_b").success
    # make shop_b's copied advice look applicable: remediation of the pipeline's database must still skip it
    marked = conn.execute(
        "UPDATE automation.performance_recommendations SET priority = 'high', "
        'metadata = metadata || \'{"verification": "hypopg"}\' '
        "WHERE target = 'shop_b' AND recommendation_type = 'missing_index'"
    ).rowcount
    assert marked == len(EXPECTED)
    assert remediate(conn, apply=True, actor="test") == []
    assert not conn.execute("SELECT count(*) FROM automation.remediation_audit").fetchone()[0]


def test_an_unreachable_target_fails_only_its_own_profiling_run(shop_b, pg_url, conn):
    assert profile(pg_url, "default").success
    before = {table: rows(conn, table, "default") for table in TABLES}
    result = profile(pg_url, "down")
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures
    for event in failures:
        message = event.step_failure_data.error.message.strip()
        assert "target 'down' is unreachable at postgresql://nobody:***@127.0.0.1:" in message
        assert "secret" not in message
    assert {table: rows(conn, table, "default") for table in TABLES} == before
    assert not any(rows(conn, table, "down") for table in TABLES)
    assert profile(pg_url, "shop_b").success  # the other targets go ahead


def test_cli_optimize_target(shop_b, pg_url, conn, monkeypatch, capsys):
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    with psycopg.connect(shop_b, autocommit=True) as shop:
        w.run_workload(shop)
    assert cli.main(["optimize", "--target", "shop_b", "--min-mean-ms", "0"]) == 0
    assert "shop.orders" in capsys.readouterr().out
    assert conn.execute(
        "SELECT count(*) FROM automation.performance_recommendations WHERE target = 'shop_b'"
    ).fetchone()[0]
    assert cli.main(["optimize", "--target", "down"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autopilot: error: target 'down' is unreachable") and "\n" not in err
    assert cli.main(["optimize", "--target", "nope"]) == 2
    assert "unknown target 'nope'" in capsys.readouterr().err


def test_schedule_requests_one_profiling_run_per_target(shop_b, pg_url):
    with dg.instance_for_test() as instance:  # a schedule reads the targets from its instance
        sync_targets(instance, ["default", "down", "shop_b"])
        scheduled = datetime(2026, 3, 2, 3, 20, tzinfo=UTC)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=scheduled) as context:
            requests = profiling_daily_schedule(context)
    assert sorted((r.run_key, r.partition_key) for r in requests) == [
        ("default:2026-03-02", "default"),
        ("down:2026-03-02", "down"),
        ("shop_b:2026-03-02", "shop_b"),
    ]


def test_a_target_without_the_current_schema_fails_its_run_in_one_line(
    shop_b, pg_server, pg_url, monkeypatch
):
    name = f"bare_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("BARE_URL", _create_database(pg_server, name))  # never migrated
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            targets.add_target(conn, "bare", url_env="BARE_URL")
        result = profile(pg_url, "bare")
        assert not result.success
        messages = {
            e.step_failure_data.error.message.strip()
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        }
        assert messages
        for message in messages:  # one line, saying what to do
            (line,) = [x for x in message.splitlines() if "target 'bare'" in x]
            assert "target 'bare': database schema is not up to date (" in line
            assert line.endswith("run `autopilot db migrate` against it")
    finally:
        _drop_database(pg_server, name)


def test_profiling_runs_are_the_targets_partitions_in_the_instance(shop_b, pg_url, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    job = runner.load_definitions().resolve_job_def("profiling_job")
    assert job.partitions_def == partitions.targets  # target only: no time dimension to pretend
    with dg.instance_for_test() as instance:
        shop = runner.run_job(instance, "profiling_job", target="shop_b")
        down = runner.run_job(instance, "profiling_job", target="down")
        assert shop.success and shop.partitions == "shop_b"
        assert not down.success and down.partitions == "down"
        for key in ("automation/query_stats", "automation/performance_recommendations"):
            asset = dg.AssetKey.from_user_string(key)
            assert instance.get_materialized_partitions(asset) == {"shop_b"}  # per-target status in the UI
        assert instance.get_run_by_id(shop.run_id).tags["dagster/partition"] == "shop_b"
