"""Issue 10 point 5: Slack sees each notification at most once, and nothing is lost.

A real local webhook receiver, real Postgres, and (for the crash) a real notifier process killed with
SIGKILL while its POST is in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import psycopg
import pytest

from autopilot_pipeline.alerting.engine import fire_alert
from autopilot_pipeline.alerting.notifications import send_pending_notifications
from autopilot_pipeline.integrations.slack import SlackWebhook

from .conftest import ROOT, Receiver, free_port

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def no_sleep(_seconds: float) -> None:
    """Back-off waits are real in production; here only the number of attempts matters."""


def add_rule(conn: psycopg.Connection, name: str = "High Memory") -> None:
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, severity, notify_slack) "
        "VALUES (%s, 'memory_usage_pct', '>', 80, 'critical', true)",
        (name,),
    )


def ledger(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT transition, status FROM automation.alert_notifications ORDER BY id"
    ).fetchall()


def pending(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM automation.alert_history WHERE notified_at IS NULL").fetchone()[
        0
    ]


def test_a_slow_receiver_gets_exactly_one_post(conn, receiver: Receiver) -> None:
    add_rule(conn)
    fire_alert(conn, "High Memory", "api", 93.0, at=NOW)
    receiver.script = [("sleep", 1.5)]  # accepts the message, acknowledges after the client gave up
    webhook = SlackWebhook(receiver.url, timeout_s=0.4, attempts=3, sleep=no_sleep)
    report = send_pending_notifications(conn, webhook, now=NOW)
    assert report.unconfirmed == 1 and report.messages_sent == 0 and report.error is None
    again = send_pending_notifications(conn, webhook, now=NOW)  # the next sensor tick
    assert again.messages_sent == 0 and again.unconfirmed == 0
    assert len(receiver.bodies) == 1
    assert ledger(conn) == [("firing", "unconfirmed")] and pending(conn) == 0


def test_names_are_escaped_so_nobody_is_pinged(conn, receiver: Receiver) -> None:
    add_rule(conn, "<!channel> & <@U024BE7LH>")
    fire_alert(conn, "<!channel> & <@U024BE7LH>", "<https://evil.example|click>", 93.0, at=NOW)
    send_pending_notifications(conn, SlackWebhook(receiver.url), now=NOW)
    (text,) = receiver.texts
    assert "&lt;!channel&gt; &amp; &lt;@U024BE7LH&gt;" in text
    assert "&lt;https://evil.example|click&gt;" in text
    assert "<" not in text.replace("&lt;", "") and ">" not in text.replace("&gt;", "")


def test_a_refused_connection_is_retried_later_and_nothing_is_lost(conn) -> None:
    add_rule(conn)
    fire_alert(conn, "High Memory", "api", 93.0, at=NOW)
    port = free_port()
    webhook = SlackWebhook(f"http://127.0.0.1:{port}/hook", timeout_s=1, attempts=3, sleep=no_sleep)
    down = send_pending_notifications(conn, webhook, now=NOW)
    assert down.error and "cannot connect" in down.error and pending(conn) == 1
    assert ledger(conn) == [("firing", "failed")]
    up = Receiver()  # Slack is back (on another port: point the webhook at it)
    try:
        report = send_pending_notifications(conn, SlackWebhook(up.url, sleep=no_sleep), now=NOW)
        assert report.messages_sent == 1 and len(up.bodies) == 1 and pending(conn) == 0
    finally:
        up.close()
    assert ledger(conn) == [("firing", "failed"), ("firing", "sent")]


def test_5xx_and_429_are_retried_at_most_three_times(receiver: Receiver) -> None:
    receiver.script = [503, 429, 200]
    waits: list[float] = []
    ok = SlackWebhook(receiver.url, attempts=4, backoff_s=0.5, sleep=waits.append).post({"text": "x"})
    assert ok.ok and ok.attempts == 3 and waits == [0.5, 0.0]  # back-off, then Retry-After: 0
    receiver.script = [500] * 10
    failed = SlackWebhook(receiver.url, attempts=4, sleep=no_sleep).post({"text": "y"})
    assert not failed.ok and failed.attempts == 4 and len(receiver.bodies) == 3 + 4
    with pytest.raises(ValueError, match="between 1 and 4"):
        SlackWebhook(receiver.url, attempts=5)


_NOTIFIER = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    import psycopg
    from autopilot_pipeline.alerting.notifications import send_pending_notifications
    from autopilot_pipeline.integrations.slack import SlackWebhook
    with psycopg.connect(sys.argv[1], autocommit=True) as conn:
        send_pending_notifications(conn, SlackWebhook(sys.argv[2], timeout_s=60), now=datetime.fromisoformat(sys.argv[3]))
    """
)


def test_a_notifier_killed_mid_send_does_not_resend(pg_url: str, conn, receiver: Receiver) -> None:
    add_rule(conn)
    fire_alert(conn, "High Memory", "api", 93.0, at=NOW)
    receiver.script = [("sleep", 30)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _NOTIFIER, pg_url, receiver.url, NOW.isoformat()], env=env)
    try:
        assert receiver.received.wait(60), "the notifier never posted"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert ledger(conn) == [("firing", "sending")]  # recorded before it was sent
    report = send_pending_notifications(conn, SlackWebhook(receiver.url, sleep=no_sleep), now=NOW)
    assert report.unconfirmed == 1 and report.messages_sent == 0
    assert len(receiver.bodies) == 1 and pending(conn) == 0
    assert ledger(conn) == [("firing", "unconfirmed")]
