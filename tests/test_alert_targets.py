"""Alert rules per monitored target: each rule is evaluated on every target it applies to, from that
target's own database, and the same rule on two targets gives two independent alerts (real Postgres: the
default target is the test database, ``shop_b`` a second database on the same server)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from autopilot_pipeline.alerting.engine import evaluate_alert_rules, fire_alert, resolve_alert
from autopilot_pipeline.postgres import migrate, targets

from .conftest import TEMPLATE, _create_database, _drop_database

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop_b(pg_server: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A second monitored database, registered as the target ``shop_b`` (URL in an environment variable)."""
    name = f"autopilot_test_shop_b_{uuid.uuid4().hex[:8]}"
    url = _create_database(pg_server, name, template=TEMPLATE)
    monkeypatch.setenv("SHOP_B_URL", url)
    targets.add_target(conn, "shop_b", url_env="SHOP_B_URL")
    yield url
    _drop_database(pg_server, name)


def checks(url_or_conn: str | psycopg.Connection, status: str, end: datetime, minutes: int = 30) -> None:
    """One check a minute of component ``api`` in the half hour up to ``end``."""
    rows = [(end - timedelta(minutes=m), "api", "health_check", status, 20.0) for m in range(minutes)]
    own = isinstance(url_or_conn, str)
    db = psycopg.connect(url_or_conn, autocommit=True) if own else url_or_conn
    try:
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO automation.health_log (checked_at, source, kind, status, response_time_ms) "
                "VALUES (%s, %s, %s, %s, %s)",
                rows,
            )
    finally:
        if own:
            db.close()


def add_rule(conn: psycopg.Connection, name: str, target: str | None) -> None:
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes, "
        "severity, notify_slack, target) VALUES (%s, 'uptime_percentage', '<', 99, 0, 'critical', true, %s)",
        (name, target),
    )


def history(conn: psycopg.Connection, rule: str) -> list[tuple]:
    return conn.execute(
        "SELECT target, component, status, message, metadata FROM automation.alert_history "
        "WHERE rule_name = %s ORDER BY target, id",
        (rule,),
    ).fetchall()


def test_a_rule_for_every_target_fires_only_on_the_breaching_one(conn, shop_b):
    add_rule(conn, "Api down", None)
    checks(conn, "healthy", NOW)
    checks(shop_b, "down", NOW)
    result = evaluate_alert_rules(conn, NOW)
    mine = result.instances.filter(result.instances["rule"] == "Api down")
    assert mine.select("target", "component", "state").rows() == [("shop_b", "api", "firing")]
    ((target, component, status, message, metadata),) = history(conn, "Api down")
    assert (target, component, status) == ("shop_b", "api", "firing")
    assert "on api of target shop_b" in message
    assert metadata["target"] == "shop_b"

    # later the default target breaches too: a second, independent alert; shop_b's stays open, untouched
    later = NOW + timedelta(minutes=5)
    checks(conn, "down", later, minutes=5)
    checks(shop_b, "down", later, minutes=5)
    evaluate_alert_rules(conn, later)
    rows = history(conn, "Api down")
    assert [(r[0], r[2]) for r in rows] == [("default", "firing"), ("shop_b", "firing")]
    assert "target" not in rows[0][4] and "of target" not in rows[0][3]  # default reads as before
    states = conn.execute(
        "SELECT s.target, s.state FROM automation.alert_state s JOIN automation.alert_rules r ON r.id = s.rule_id "
        "WHERE r.name = 'Api down' ORDER BY s.target"
    ).fetchall()
    assert states == [("default", "firing"), ("shop_b", "firing")]

    # shop_b recovers (its window now all healthy): only its alert resolves
    recovered = NOW + timedelta(hours=2)
    checks(conn, "down", recovered, minutes=5)
    checks(shop_b, "healthy", recovered, minutes=5)
    evaluate_alert_rules(conn, recovered)
    rows = history(conn, "Api down")
    assert [(r[0], r[2]) for r in rows] == [("default", "firing"), ("shop_b", "resolved")]


def test_a_rule_naming_a_target_ignores_the_others(conn, shop_b):
    add_rule(conn, "Shop B api", "shop_b")
    add_rule(conn, "Default api", "default")
    checks(conn, "down", NOW)  # the default target breaches
    checks(shop_b, "healthy", NOW)
    result = evaluate_alert_rules(conn, NOW)
    assert history(conn, "Shop B api") == []
    assert [(r[0], r[2]) for r in history(conn, "Default api")] == [("default", "firing")]
    assert "Shop B api" not in result.skipped["rule"].to_list()


def test_an_unreachable_target_skips_only_its_own_evaluation(conn, shop_b, monkeypatch):
    add_rule(conn, "Api down", None)
    checks(shop_b, "down", NOW)
    evaluate_alert_rules(conn, NOW)
    assert [(r[0], r[2]) for r in history(conn, "Api down")] == [("shop_b", "firing")]

    monkeypatch.delenv("SHOP_B_URL")
    targets.add_target(conn, "shop_c", url_env="SHOP_C_URL")  # never set
    later = NOW + timedelta(hours=2)  # shop_b's window is empty by now, but it cannot be read
    result = evaluate_alert_rules(conn, later)
    reasons = set(result.skipped.filter(result.skipped["rule"] == "Api down")["reason"])
    assert reasons == {
        "target 'shop_b': environment variable SHOP_B_URL is not set",
        "target 'shop_c': environment variable SHOP_C_URL is not set",
    }
    # nothing was decided about shop_b: its alert stays firing until its data can be read again
    assert [(r[0], r[2]) for r in history(conn, "Api down")] == [("shop_b", "firing")]
    assert conn.execute(
        "SELECT s.target, s.state FROM automation.alert_state s JOIN automation.alert_rules r ON r.id = s.rule_id "
        "WHERE r.name = 'Api down'"
    ).fetchall() == [("shop_b", "firing")]


def test_an_unknown_target_is_skipped_with_a_reason(conn, caplog):
    add_rule(conn, "On typo", "shop_x")
    with caplog.at_level("WARNING"):
        result = evaluate_alert_rules(conn, NOW)
    reasons = dict(zip(result.skipped["rule"], result.skipped["reason"], strict=True))
    assert reasons["On typo"] == "unknown target 'shop_x' (see `autopilot targets list`)"
    assert "unknown target 'shop_x'" in caplog.text


def test_fire_and_resolve_by_hand_name_the_target(conn, shop_b):
    add_rule(conn, "Api down", None)
    on_b = fire_alert(conn, "Api down", "api", 50.0, at=NOW, target="shop_b")
    on_default = fire_alert(conn, "Api down", "api", 40.0, at=NOW)
    assert on_b != on_default
    assert resolve_alert(conn, rule="Api down", component="api", target="shop_b", at=NOW)
    rows = history(conn, "Api down")
    assert [(r[0], r[2]) for r in rows] == [("default", "firing"), ("shop_b", "resolved")]


def test_migration_0018_keeps_existing_alerts_as_the_default_targets(pg_server, tmp_path):
    """State and history written before 0018 become the ``default`` target's, under the new keys."""
    name = f"alert_targets_upgrade_{uuid.uuid4().hex[:8]}"
    url = _create_database(pg_server, name)
    try:
        before = tmp_path / "sql"
        before.mkdir()
        for m in migrate.available():
            if m.version < "0018":
                shutil.copy(m.path, before)
        migrate.migrate(url, before)
        with psycopg.connect(url, autocommit=True) as c:
            add_rule(c, "Api down", None)
            c.execute(
                "INSERT INTO automation.alert_state (rule_id, component, state, active_at, fired_at) "
                "SELECT id, 'api', 'firing', %s, %s FROM automation.alert_rules WHERE name = 'Api down'",
                (NOW, NOW),
            )
            c.execute(
                "INSERT INTO automation.alert_history (rule_id, rule_name, component, severity, message, "
                "fired_at) SELECT id, name, 'api', 'critical', 'old', %s FROM automation.alert_rules "
                "WHERE name = 'Api down'",
                (NOW,),
            )
        assert "0018_alert_targets" in migrate.migrate(url)
        with psycopg.connect(url, autocommit=True) as c:
            assert c.execute("SELECT target, state FROM automation.alert_state").fetchall() == [
                ("default", "firing")
            ]
            assert c.execute("SELECT target FROM automation.active_alerts").fetchall() == [("default",)]
            # the stored alert carries on: healthy checks resolve it, exactly once
            checks(c, "healthy", NOW + timedelta(minutes=5), minutes=5)
            evaluate_alert_rules(c, NOW + timedelta(minutes=5))
            assert history(c, "Api down")[0][:3] == ("default", "api", "resolved")
            # the same rule and component may now be open once per target, still only once per target
            fire_alert(c, "Api down", "api", 1.0, at=NOW + timedelta(minutes=6))
            open_row = (
                "INSERT INTO automation.alert_history (rule_id, rule_name, target, component, severity, "
                "message, fired_at) SELECT id, name, %s, 'api', 'critical', 'x', %s "
                "FROM automation.alert_rules WHERE name = 'Api down'"
            )
            c.execute(open_row, ("shop_b", NOW))
            with pytest.raises(psycopg.errors.UniqueViolation):
                c.execute(open_row, ("default", NOW))
    finally:
        _drop_database(pg_server, name)


def test_metadata_is_json_with_the_target(conn, shop_b):
    add_rule(conn, "Api down", "shop_b")
    checks(shop_b, "down", NOW)
    evaluate_alert_rules(conn, NOW)
    (metadata,) = conn.execute("SELECT metadata::text FROM automation.alert_history").fetchone()
    assert json.loads(metadata)["target"] == "shop_b"


def test_a_custom_metric_is_known_per_target(conn, shop_b):
    """Samples live in each monitored database: a metric only shop_b reports is evaluated there, and is
    unknown (skipped with a reason) on the default target."""
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes) "
        "VALUES ('Queue depth', 'queue_depth', '>', 100, 0)"
    )
    with psycopg.connect(shop_b, autocommit=True) as db:
        db.execute(
            "INSERT INTO automation.metric_samples (sampled_at, source, metric_name, value) "
            "VALUES (%s, 'worker', 'queue_depth', 250)",
            (NOW - timedelta(minutes=1),),
        )
    result = evaluate_alert_rules(conn, NOW)
    reasons = set(result.skipped.filter(result.skipped["rule"] == "Queue depth")["reason"])
    assert reasons == {
        "unknown metric 'queue_depth' (not built in, and no automation.metric_samples rows use it)"
    }
    assert [(r[0], r[1], r[2]) for r in history(conn, "Queue depth")] == [("shop_b", "worker", "firing")]


def test_an_alert_on_a_removed_target_is_resolved(conn, shop_b):
    add_rule(conn, "Api down", None)
    checks(shop_b, "down", NOW)
    evaluate_alert_rules(conn, NOW)
    assert [(r[0], r[2]) for r in history(conn, "Api down")] == [("shop_b", "firing")]
    targets.remove_target(conn, "shop_b")
    evaluate_alert_rules(conn, NOW + timedelta(minutes=1))
    assert conn.execute(
        "SELECT target, status, resolution FROM automation.alert_history WHERE rule_name = 'Api down'"
    ).fetchall() == [("shop_b", "resolved", "target no longer watched")]
    assert conn.execute("SELECT count(*) FROM automation.alert_state WHERE target = 'shop_b'").fetchone() == (
        0,
    )


def test_a_target_without_the_seed_tables_skips_only_its_rules(conn, shop_b, pg_server, monkeypatch):
    add_rule(conn, "Api down", None)
    checks(conn, "down", NOW)
    name = f"autopilot_test_bare_{uuid.uuid4().hex[:8]}"
    bare = _create_database(pg_server, name)  # no migrations: no automation.health_log
    try:
        monkeypatch.setenv("BARE_URL", bare)
        targets.add_target(conn, "bare", url_env="BARE_URL")
        result = evaluate_alert_rules(conn, NOW)
        reasons = set(result.skipped.filter(result.skipped["rule"] == "Api down")["reason"])
        assert len(reasons) == 1
        (reason,) = reasons
        assert reason.startswith("target 'bare' could not be read: ") and "automation." in reason
        assert "\n" not in reason and "password" not in reason
        assert [(r[0], r[2]) for r in history(conn, "Api down")] == [("default", "firing")]
    finally:
        _drop_database(pg_server, name)


def test_the_cli_shows_the_target(conn, shop_b, pg_url, tmp_path, monkeypatch, capsys):
    from autopilot_pipeline import cli

    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "200")
    add_rule(conn, "Api down", "shop_b")
    checks(shop_b, "down", NOW)
    assert cli.main(["alerts", "evaluate", "--at", NOW.isoformat()]) == 0
    evaluated = capsys.readouterr().out
    assert "target" in evaluated and "shop_b" in evaluated
    assert cli.main(["alerts", "list"]) == 0
    listed = capsys.readouterr().out
    assert "target" in listed and "shop_b" in listed
