"""Auto-remediation builds only our own advice (issue 10.12): whoever wrote a recommendation row, the index
statement is derived again from its structured key, checked against the catalog, and its saving verified
again with HypoPG before anything is built. Real PostgreSQL 15 with HypoPG and the shop workload."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from autopilot_pipeline.profiling.store.catalog import read_indexes
from autopilot_pipeline.profiling.store.recommendations import optimize_system
from autopilot_pipeline.profiling.store.remediation import remediate

from ..test_profiling_db import SETTINGS, prepare, shop15, shop15_template  # noqa: F401 - fixtures


def _plant(conn: psycopg.Connection, key: str, action: str) -> None:
    """A high-priority, "verified" recommendation written straight into the table, as a hostile writer would."""
    conn.execute(
        "INSERT INTO automation.performance_recommendations (recommendation_key, recommendation_type, "
        "priority, description, action_sql, metadata) VALUES (%s, 'missing_index', 'high', 'planted', %s, %s)",
        (key, action, Jsonb({"verification": "hypopg", "estimated_saved_ms": 1e12})),
    )


def test_planted_recommendations_are_refused_and_nothing_is_built(shop15: str) -> None:  # noqa: F811
    with prepare(shop15) as conn:
        optimize_system(conn, SETTINGS)
        conn.execute("DELETE FROM automation.performance_recommendations")  # only the planted rows remain
        before = {(ix.schema, ix.name) for ix in read_indexes(conn)}
        _plant(conn, "missing_index:shop.orders(no_such_column)", "DROP TABLE shop.orders")
        _plant(conn, "missing_index:automation.health_log(source)", "SELECT 1")
        _plant(conn, "missing_index:shop.nothing_here(id)", "SELECT 1")
        _plant(conn, "missing_index:shop.customers(tier)", "SELECT 1")  # a real column no slow query needs
        results = remediate(conn, apply=True, actor="test", settings=SETTINGS)
        reasons = {r["key"]: r["reason"] for r in results}
        assert {r["result"] for r in results} == {"skipped"}
        assert "no column no_such_column" in reasons["missing_index:shop.orders(no_such_column)"]
        assert "not an application table" in reasons["missing_index:automation.health_log(source)"]
        assert "no table shop.nothing_here" in reasons["missing_index:shop.nothing_here(id)"]
        assert "no analysed slow query" in reasons["missing_index:shop.customers(tier)"]
        assert {(ix.schema, ix.name) for ix in read_indexes(conn)} == before  # nothing built
        assert conn.execute("SELECT to_regclass('shop.orders') IS NOT NULL").fetchone()[
            0
        ]  # action_sql never ran
        audited = conn.execute(
            "SELECT count(*) FROM automation.remediation_audit WHERE result = 'skipped' AND details->>'reason' LIKE 'refused:%%'"
        ).fetchone()[0]
        assert audited == 4
