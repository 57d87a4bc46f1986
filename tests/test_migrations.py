"""Migrations apply cleanly, twice, on the embedded PostgreSQL 18 and on PostgreSQL 15."""

import uuid

import psycopg
import pytest

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import migrate, urls

from .conftest import _create_database, _drop_database

EXPECTED_TABLES = {
    "automation.health_log",
    "automation.metric_samples",
    "automation.migration_log",
    "automation.deployment_log",
    "automation.query_performance",
    "automation.table_statistics",
    "automation.alert_rules",
    "automation.alert_history",
    "automation.alert_suppressions",
    "automation.performance_recommendations",
    "analytics.uptime_hourly",
    "analytics.uptime_daily",
    "analytics.error_rates_hourly",
    "analytics.response_times_hourly",
    "analytics.health_score_hourly",
    "analytics.release_stats_daily",
    "analytics.quarantine",
    "demo.incidents",
}
EXPECTED_VIEWS = {"automation.slow_queries_summary", "automation.table_health", "automation.active_alerts"}


@pytest.fixture(params=["embedded-18", "debian-15"])
def empty_db(request):
    server_url = request.getfixturevalue("pg_server" if request.param == "embedded-18" else "pg15_server")
    name = f"migrate_{uuid.uuid4().hex[:10]}"
    url = _create_database(server_url, name)
    yield url
    _drop_database(server_url, name)


def test_migrations_apply_twice_and_create_the_data_model(empty_db):
    first = migrate.migrate(empty_db)
    assert first == [m.version for m in migrate.available()]
    assert migrate.migrate(empty_db) == []  # second run changes nothing
    with psycopg.connect(empty_db) as conn:
        tables = {
            f"{s}.{t}"
            for s, t in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('automation', 'analytics', 'demo')"
            ).fetchall()
        }
        assert tables >= EXPECTED_TABLES | EXPECTED_VIEWS
        rules = conn.execute(
            "SELECT name, metric_name, condition, threshold FROM automation.alert_rules"
        ).fetchall()
        assert len(rules) == 6 and ("Low Uptime", "uptime_percentage", "<", 95.0) in rules
        # the seed's SQL API, called exactly as the seed does
        conn.execute(
            "SELECT automation.log_query_performance("
            "'SELECT * FROM lms.users WHERE created_at > NOW() - INTERVAL ''1 day''', 1250, 100, 'api')"
        )
        assert conn.execute("SELECT calls FROM automation.slow_queries_summary").fetchone() == (1,)
        version = conn.execute("SHOW server_version_num").fetchone()[0]
    assert int(version) >= 150000


def test_alert_rule_constraints_reject_bad_rules(conn):
    for bad in (
        "('x', 'm', '>>', 1, 5, 'warning')",  # unknown condition
        "('y', 'm', '>', 1, -5, 'warning')",  # negative duration
        "('z', 'm', '>', 1, 5, 'urgent')",  # unknown severity
    ):
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes, "
                f"severity) VALUES {bad}"
            )


def test_an_edited_applied_migration_is_refused(pg_url, tmp_path):
    for m in migrate.available():
        (tmp_path / m.path.name).write_text(m.sql)
    migrate.migrate(pg_url, tmp_path)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(AutopilotError, match="changed after it was applied"):
        migrate.migrate(pg_url, tmp_path)


def test_pending_migrations_are_reported_in_one_line(pg_server):
    name = f"pending_{uuid.uuid4().hex[:10]}"
    url = _create_database(pg_server, name)
    try:
        with (
            psycopg.connect(urls.libpq_url(url)) as conn,
            pytest.raises(AutopilotError, match="autopilot db migrate"),
        ):
            migrate.require_current(conn)
    finally:
        _drop_database(pg_server, name)
