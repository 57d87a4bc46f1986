"""The Slack receiver (a real local webhook) is told which target an alert is about, escaped like any other
user-supplied name; the same rule firing on two targets is two alerts, each announced once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from autopilot_pipeline.alerting.engine import evaluate_alert_rules
from autopilot_pipeline.alerting.notifications import send_pending_notifications
from autopilot_pipeline.integrations.slack import SlackWebhook
from autopilot_pipeline.postgres import targets

from ..conftest import TEMPLATE, _create_database, _drop_database
from .conftest import Receiver

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def down_checks(url: str, end: datetime) -> None:
    with psycopg.connect(url, autocommit=True) as db, db.cursor() as cur:
        cur.executemany(
            "INSERT INTO automation.health_log (checked_at, source, kind, status, response_time_ms) "
            "VALUES (%s, 'api', 'health_check', 'down', 20)",
            [(end - timedelta(minutes=m),) for m in range(30)],
        )


def test_slack_names_the_target_of_each_alert(
    pg_server, pg_url, conn, receiver: Receiver, monkeypatch
) -> None:
    name = f"autopilot_test_shop_b_{uuid.uuid4().hex[:8]}"
    shop_b = _create_database(pg_server, name, template=TEMPLATE)
    try:
        monkeypatch.setenv("SHOP_B_URL", shop_b)
        targets.add_target(conn, "shop_b", url_env="SHOP_B_URL")
        conn.execute("UPDATE automation.alert_rules SET enabled = false")  # only the rule under test
        conn.execute(
            "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes, "
            "severity, notify_slack) VALUES ('Api down', 'uptime_percentage', '<', 99, 0, 'critical', true)"
        )
        down_checks(pg_url, NOW)  # both targets breach: two alerts
        down_checks(shop_b, NOW)
        evaluate_alert_rules(conn, NOW)
        report = send_pending_notifications(conn, SlackWebhook(receiver.url), now=NOW)
        assert report.messages_sent == 1 and report.firing_notified == 2
        (text,) = receiver.texts
        groups = text.split("\n\n")[1:]
        assert len(groups) == 2
        default_group, shop_group = groups
        assert "*Api down*" in default_group and "target" not in default_group
        assert "*Api down*" in shop_group and "· target `shop_b`" in shop_group
        # announced once each: the next pass sends nothing
        again = send_pending_notifications(conn, SlackWebhook(receiver.url), now=NOW + timedelta(minutes=1))
        assert again.messages_sent == 0 and len(receiver.bodies) == 1
        ledger = conn.execute(
            "SELECT h.target, n.transition, n.status FROM automation.alert_notifications n "
            "JOIN automation.alert_history h ON h.id = n.history_id ORDER BY h.target"
        ).fetchall()
        assert ledger == [("default", "firing", "sent"), ("shop_b", "firing", "sent")]
    finally:
        _drop_database(pg_server, name)


def test_a_target_name_cannot_ping() -> None:
    """Target names are validated identifiers, and the text escapes them anyway."""
    import polars as pl

    from autopilot_pipeline.alerting.notifications import build_messages
    from autopilot_pipeline.alerting.store import PENDING_TARGET_SCHEMA

    row = {c: None for c in PENDING_TARGET_SCHEMA}
    row.update(
        id=1, rule_id=1, rule_name="r", component="api", severity="critical", status="firing", value=1.0,
        threshold=99.0, message="", fired_at=NOW, suppressed=False, metric_name="uptime_percentage",
        condition="<", duration_minutes=0, target="<!channel>",
    )  # fmt: skip
    (message,) = build_messages(pl.DataFrame([row], schema=PENDING_TARGET_SCHEMA))
    assert "&lt;!channel&gt;" in message.text and "<!channel>" not in message.text
