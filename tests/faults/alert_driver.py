"""A restartable alert process for the fault tests: evaluate and notify once per simulated minute.

``python -m tests.faults.alert_driver URL WEBHOOK T0 MINUTES`` resumes after the last evaluation stored in
the database (first finishing that minute's notifications), so killing it at any point and starting it
again is what a crashed and restarted scheduler does. It prints ``done <minute>`` after each minute.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import psycopg

from autopilot_pipeline.alerting.engine import evaluate_alert_rules
from autopilot_pipeline.alerting.notifications import send_pending_notifications
from autopilot_pipeline.integrations.slack import SlackWebhook


def drive(url: str, webhook_url: str, t0: datetime, minutes: int, say=print) -> None:  # noqa: ANN001
    webhook = SlackWebhook(webhook_url, timeout_s=10, attempts=3, sleep=lambda _s: None)
    with psycopg.connect(url, autocommit=True) as conn:
        (last,) = conn.execute("SELECT max(evaluated_at) FROM automation.alert_evaluations").fetchone()
        start = 0
        if last is not None:
            send_pending_notifications(conn, webhook, last)  # finish the minute a crash interrupted
            start = int((last - t0) / timedelta(minutes=1)) + 1
        for minute in range(start, minutes):
            now = t0 + timedelta(minutes=minute)
            result = evaluate_alert_rules(conn, now)
            assert result.refused is None, result.refused
            send_pending_notifications(conn, webhook, now)
            say(f"done {minute}")


if __name__ == "__main__":
    drive(
        sys.argv[1],
        sys.argv[2],
        datetime.fromisoformat(sys.argv[3]),
        int(sys.argv[4]),
        lambda s: print(s, flush=True),
    )
