"""Foreign-key indexes, drop proposals and realized savings (issue 13, points 4, 6, 7) on the embedded
PostgreSQL 18 with pg_stat_statements: workloads of 0.5-0.6 M rows from ``tests/index_workloads``, the
profiling assets materialized as the daily run does, every expected answer checked by EXPLAIN (ANALYZE)
before and after applying it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from autopilot_pipeline import cli
from autopilot_pipeline.defs.profiling import assets as A
from autopilot_pipeline.defs.profiling.resources import ProfilingConfig, ProfilingResource
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.postgres import migrate, urls
from autopilot_pipeline.profiling.store.catalog import explain, read_indexes, read_only
from autopilot_pipeline.profiling.store.recommendations import optimize_system, read_open_recommendations

from .extensions import require_extension
from .index_workloads import set_and_drops as w
from .profiling_runs import materialize_target

PROFILING = [A.query_stats, A.table_statistics, A.slow_queries, A.performance_recommendations]


def run(url: str, **settings: Any) -> dg.ExecuteInProcessResult:
    """One profiling run: statistics window and catalog look, slow-query analysis, recommendations."""
    config = ProfilingConfig(min_mean_ms=0.0, **settings)  # type: ignore[arg-type]
    resources = {
        "postgres": PostgresResource(database_url=url),
        "profiling": ProfilingResource(settings=config),
    }
    result = materialize_target(PROFILING, resources)
    assert result.success
    return result


def recommendations(conn: psycopg.Connection) -> dict[str, dict]:
    return {r["recommendation_key"]: r for r in read_open_recommendations(conn, include_implemented=True)}


def asset_metadata(result: dg.ExecuteInProcessResult, asset: str, key: str) -> Any:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return event.materialization.metadata[key].value
    raise KeyError(asset)


def index_names_in_plan(plan: dict) -> set[str]:
    out, stack = set(), [plan]
    while stack:
        node = stack.pop()
        if "Index Name" in node:
            out.add(node["Index Name"])
        stack.extend(node.get("Plans", []))
    return out


# --------------------------------------------------------------------------------------------- point 4


@pytest.mark.slow
def test_foreign_keys_of_deleted_parents_get_an_index_and_the_deletes_get_10x_faster(pg_url, conn):
    w.build_foreign_keys(conn)
    run(pg_url)  # the baseline: first statistics snapshot and catalog look
    w.delete_accounts(conn, w.DELETABLE[:20])
    run(pg_url)

    recs = recommendations(conn)
    fk_recs = {k: r for k, r in recs.items() if r["metadata"].get("reason") == "foreign_key"}
    found = {(r["table_name"], tuple(r["metadata"]["index_columns"])) for r in fk_recs.values()}
    assert found == w.FK_EXPECTED
    assert not found & w.FK_NOT_EXPECTED
    invoices = fk_recs["missing_index:fk.invoices(account_id)"]
    details = invoices["metadata"]
    (delete,) = [s for s in details["queries"] if s["kind"] == "parent_delete"]
    assert delete["calls"] == 20 and delete["query"].startswith("DELETE FROM fk.accounts")
    assert any(s["kind"] == "ri_check" for s in details["queries"])
    assert details["estimated_saved_ms"] > 0 and details["predicted_saving_pct"] > 50
    assert details["estimated_size_bytes"] > 5_000_000  # 600k entries
    assert "EXPLAIN of the DELETE does not show" in details["why"]
    assert details["index_writes_per_day"] > 0
    assert "20 parent rows deleted" in invoices["description"]
    assert "ON DELETE CASCADE" in fk_recs["missing_index:fk.sessions(account_id)"]["description"]
    assert all(r["action_sql"].startswith("CREATE INDEX CONCURRENTLY") for r in fk_recs.values())

    victims = w.DELETABLE[100:110]
    before = min(w.delete_ms(conn, victims) for _ in range(2))
    for r in fk_recs.values():
        conn.execute(r["action_sql"])
    conn.execute("ANALYZE fk.invoices, fk.sessions")
    after = min(w.delete_ms(conn, victims) for _ in range(3))
    assert before >= 10 * after, f"deleting 10 accounts: {before:.1f} ms -> {after:.1f} ms"

    run(pg_url)  # the advice is recognized as implemented, and nothing new is proposed for these keys
    again = recommendations(conn)
    assert all(again[k]["implemented"] for k in fk_recs)
    assert not [
        k for k, r in again.items() if r["metadata"].get("reason") == "foreign_key" and not r["implemented"]
    ]
    applied = {s["index"]: s for s in optimize_system(conn, refresh=False)["realizedSavings"]}
    assert set(applied) == {"fk.invoices_account_id_idx", "fk.sessions_account_id_idx"}
    assert (
        applied["fk.invoices_account_id_idx"]["recommendationKey"] == "missing_index:fk.invoices(account_id)"
    )
    assert applied["fk.invoices_account_id_idx"]["status"] == "measuring"  # no delete since


# --------------------------------------------------------------------------------------------- point 6


@pytest.mark.slow
def test_drop_proposals_name_unused_and_redundant_indexes_but_never_constraint_or_fk_ones(pg_url, conn):
    w.build_drops(conn)
    w.run_drops_queries(conn)
    run(pg_url)  # default settings: the statistics are minutes old, shorter than unused_min_stats_days
    recs = recommendations(conn)
    assert not [k for k in recs if k.startswith("unused_index:dr.")]
    assert {k for k in recs if k.startswith("duplicate_index:dr.")} == w.DROPS_DUPLICATE

    run(pg_url, unused_min_stats_days=0.0)
    recs = recommendations(conn)
    drops = {
        k: r
        for k, r in recs.items()
        if r["recommendation_type"] in ("unused_index", "duplicate_index")
        and k.split(":")[1].startswith("dr.")
    }
    assert set(drops) == w.DROPS_UNUSED | w.DROPS_DUPLICATE
    assert not {k.split(":", 1)[1] for k in drops} & w.DROPS_NEVER
    for r in drops.values():
        d = r["metadata"]["details"]
        assert d["size_bytes"] > 1_000_000 and d["why"]
        assert d["write_overhead"]["inserts_per_day"] > 0 and d["write_overhead"]["measured_over_days"] > 0
    unused = drops["unused_index:dr.orders_created_idx"]
    assert (
        "days (since the server started" in unused["description"]
        or "statistics reset" in unused["description"]
    )
    assert unused["metadata"]["details"]["observation_days"] >= 0
    prefix = drops["duplicate_index:dr.orders_customer_idx"]["metadata"]
    assert prefix["covered_by"] == "orders_customer_created_idx" and not prefix["identical"]

    def plans() -> list[set[str]]:
        with read_only(conn):
            return [index_names_in_plan(explain(conn, q)) for q in w.DROPS_QUERIES]

    before = plans()
    for r in drops.values():
        conn.execute(r["action_sql"])
    after = plans()
    assert after == before  # the queries use the same indexes: nothing they needed was dropped
    assert all(after)
    left = {ix.name for ix in read_indexes(conn) if ix.schema == "dr"}
    assert {n.split(".")[1] for n in w.DROPS_NEVER} <= left


# --------------------------------------------------------------------------------------------- point 7


@pytest.mark.slow
def test_an_index_created_by_hand_gets_its_realized_saving_beside_the_predicted_one(
    pg_url, conn, monkeypatch, capsys
):
    w.build_savings(conn)
    run(pg_url)  # baseline snapshot and catalog
    w.read_sensors(conn, 40)
    run(pg_url)  # the "before" window: 40 slow calls, and the advice
    table, columns = w.SAVINGS_INDEX
    key = f"missing_index:{table}({','.join(columns)})"
    rec = recommendations(conn)[key]
    assert rec["metadata"]["estimated_saved_ms"] > 0

    conn.execute("CREATE INDEX readings_by_sensor ON rs.readings (sensor_id)")  # by hand, another name
    w.read_sensors(conn, 3, offset=7)  # too few calls yet
    run(pg_url)  # finds the new index between two runs; the window holding the build counts for neither side
    (saving,) = optimize_system(conn, refresh=False)["realizedSavings"]
    assert saving["index"] == "rs.readings_by_sensor" and saving["source"] == "manual"
    assert saving["recommendationKey"] == key and saving["predictedSavingPct"] > 50
    assert saving["status"] == "measuring" and saving["realizedSavingPct"] is None

    w.read_sensors(conn, 40, offset=11)
    result = run(pg_url)
    (saving,) = optimize_system(conn, refresh=False)["realizedSavings"]
    assert saving["status"] == "measured"
    assert saving["callsBefore"] == 40 and saving["callsAfter"] == 40
    assert saving["realizedSavingPct"] > 50, saving  # a sequential scan of 500k rows vs an index probe
    assert saving["meanMsAfter"] < saving["meanMsBefore"]
    table_md = asset_metadata(result, "automation/performance_recommendations", "realized_savings")
    assert "rs.readings_by_sensor" in table_md and "| measured |" in table_md

    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    assert cli.main(["optimize", "--json", "--min-mean-ms", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"totalOptimizations", "optimizations", "estimatedImpact"} <= set(report)
    assert report["realizedSavings"][0]["status"] == "measured"
    assert cli.main(["optimize", "--min-mean-ms", "0"]) == 0
    out = capsys.readouterr().out
    assert "predicted vs realized" in out and "rs.readings_by_sensor (manual, 1 queries)" in out


@pytest.fixture
def pg15_url(pg15_server: str) -> Any:
    """A fresh, migrated database on Debian's PostgreSQL 15 with HypoPG (planner-verified advice)."""
    require_extension(pg15_server, "hypopg")
    name = f"advice_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(urls.with_database(pg15_server, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urls.with_database(pg15_server, name)
    migrate.migrate(url)
    yield url
    with psycopg.connect(urls.with_database(pg15_server, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.slow
def test_an_auto_applied_index_is_measured_from_the_window_its_build_closes(pg15_url):
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        w.build_savings(conn)
        run(pg15_url, high_saved_ms=0.0)
        w.read_sensors(conn, 40)
        run(pg15_url, high_saved_ms=0.0)
        table, columns = w.SAVINGS_INDEX
        key = f"missing_index:{table}({','.join(columns)})"
        assert recommendations(conn)[key]["metadata"]["verification"] == "hypopg"

        config = ProfilingConfig(auto_remediate=True)
        applied = materialize_target(
            [A.remediation_audit],
            {
                "postgres": PostgresResource(database_url=pg15_url),
                "profiling": ProfilingResource(settings=config),
            },
        )
        assert asset_metadata(applied, "automation/remediation_audit", "applied") == 1
        (saving,) = optimize_system(conn, refresh=False)["realizedSavings"]
        assert saving["source"] == "auto_apply" and saving["recommendationKey"] == key
        assert saving["status"] == "measuring"

        w.read_sensors(conn, 40, offset=5)
        run(pg15_url, high_saved_ms=0.0)  # the first run after the build measures it
        (saving,) = optimize_system(conn, refresh=False)["realizedSavings"]
        assert saving["status"] == "measured" and saving["callsAfter"] == 40
        assert saving["predictedSavingPct"] > 50 and saving["realizedSavingPct"] > 50, saving


def test_a_hand_made_index_without_advice_serves_the_queries_whose_plans_use_it(pg_url, conn):
    conn.execute(
        "CREATE SCHEMA hm; CREATE TABLE hm.items (id bigint PRIMARY KEY, sku int NOT NULL, kind int NOT NULL); "
        "INSERT INTO hm.items SELECT g, g % 20000, g % 7 FROM generate_series(1, 60000) g; ANALYZE hm.items"
    )
    no_advice = {"min_table_rows": 10_000_000}  # so the index matches no recommendation
    run(pg_url, **no_advice)
    for i in range(35):
        conn.execute("SELECT id FROM hm.items WHERE sku = %s", (i * 37,)).fetchall()
    run(pg_url, **no_advice)
    conn.execute("CREATE INDEX items_sku ON hm.items (sku)")
    conn.execute("CREATE INDEX items_kind ON hm.items (kind)")  # 7 values: no query here uses it
    run(pg_url, **no_advice)
    savings = {s["index"]: s for s in optimize_system(conn, refresh=False)["realizedSavings"]}
    assert set(savings) == {"hm.items_sku", "hm.items_kind"}
    sku = savings["hm.items_sku"]
    assert sku["recommendationKey"] is None and sku["predictedSavingPct"] is None
    assert sku["queries"] == 1 and sku["status"] == "measuring" and sku["callsBefore"] == 35
    assert savings["hm.items_kind"]["status"] == "no_queries" and savings["hm.items_kind"]["queries"] == 0
