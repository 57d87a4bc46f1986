"""The Slack webhook client against a real local HTTP server, and the grouped alert messages.

``SlackReceiver`` is a real ``http.server`` on 127.0.0.1 that records every request and answers from a
script (200, an error status, or hanging past the client's timeout); the alert-engine tests use it too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from autopilot_pipeline.alerting.notifications import MAX_COMPONENTS_LISTED, build_messages
from autopilot_pipeline.alerting.store import PENDING_SCHEMA
from autopilot_pipeline.defs.alerting.resources import SlackResource
from autopilot_pipeline.integrations.slack import SlackWebhook


class SlackReceiver:
    """A webhook endpoint: ``requests`` holds every JSON body received; ``script`` the next answers."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[int | str] = []  # 200, 500, 429, ... or "hang"; empty: 200
        self.release = threading.Event()  # set to let hanging requests finish
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = receiver.script.pop(0) if receiver.script else 200
                if answer == "hang":
                    receiver.release.wait(10)
                    return
                receiver.headers.append(dict(self.headers))
                if answer == 200:
                    receiver.requests.append(json.loads(body))
                self.send_response(int(answer))
                if answer == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(
                    b"ok" if answer == 200 else b"invalid_token" if answer == 403 else b"server_error"
                )

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/secret"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.close()


def no_sleep(_seconds: float) -> None:
    """Backoff waits are real in production; tests skip them (what is tested is the count of attempts)."""


def test_delivers_json(slack: SlackReceiver) -> None:
    delivery = SlackWebhook(slack.url, sleep=no_sleep).post({"text": "hello"})
    assert delivery.ok and delivery.attempts == 1
    assert slack.requests == [{"text": "hello"}]
    assert slack.headers[0]["Content-Type"].startswith("application/json")


def test_retries_server_errors_then_succeeds(slack: SlackReceiver) -> None:
    slack.script = [500, 503]
    waits: list[float] = []
    delivery = SlackWebhook(slack.url, attempts=3, backoff_s=0.5, sleep=waits.append).post({"text": "x"})
    assert delivery.ok and delivery.attempts == 3
    assert waits == [0.5, 1.0]  # exponential backoff
    assert slack.texts == ["x"]


def test_rate_limit_honours_retry_after(slack: SlackReceiver) -> None:
    slack.script = [429]
    waits: list[float] = []
    delivery = SlackWebhook(slack.url, sleep=waits.append).post({"text": "x"})
    assert delivery.ok and waits == [0.0]


def test_gives_up_after_attempts_with_one_line_and_no_secret(slack: SlackReceiver) -> None:
    slack.script = [500, 500, 500]
    delivery = SlackWebhook(slack.url, attempts=3, sleep=no_sleep).post({"text": "x"})
    assert not delivery.ok and delivery.attempts == 3
    assert delivery.error == "Slack webhook: HTTP 500: server_error"
    assert "secret" not in delivery.error and "\n" not in delivery.error


def test_client_errors_are_not_retried(slack: SlackReceiver) -> None:
    slack.script = [403]
    delivery = SlackWebhook(slack.url, attempts=3, sleep=no_sleep).post({"text": "x"})
    assert not delivery.ok and delivery.attempts == 1 and "403" in (delivery.error or "")


def test_timeout_after_sending_is_not_retried(slack: SlackReceiver) -> None:
    """The request arrived; only the answer is late: resending could post it twice (issue 10 point 5)."""
    slack.script = ["hang"]
    delivery = SlackWebhook(slack.url, timeout_s=0.3, attempts=2, sleep=no_sleep).post({"text": "late"})
    assert not delivery.ok and delivery.uncertain and delivery.attempts == 1


def test_unreachable_webhook_fails_cleanly() -> None:
    receiver = SlackReceiver()
    url = receiver.url
    receiver.close()  # nothing listens on that port any more
    delivery = SlackWebhook(url, attempts=2, timeout_s=1, sleep=no_sleep).post({"text": "x"})
    assert not delivery.ok and delivery.error and delivery.error.startswith("Slack webhook: cannot connect")


def test_resource_without_url_has_no_client() -> None:
    assert SlackResource().client() is None
    assert SlackResource(webhook_url="http://127.0.0.1:9/x").client() is not None


# ------------------------------------------------------------------------------------------ messages

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def pending_rows(
    rule: str,
    components: list[str],
    status: str = "firing",
    notified: bool = False,
    rule_id: int = 1,
    severity: str = "warning",
) -> pl.DataFrame:
    n = len(components)
    return pl.DataFrame(
        {
            "id": [rule_id * 1000 + i for i in range(n)],
            "rule_id": [rule_id] * n,
            "rule_name": [rule] * n,
            "component": components,
            "severity": [severity] * n,
            "status": [status] * n,
            "value": [93.25] * n,
            "threshold": [95.0] * n,
            "message": [""] * n,
            "fired_at": [T0] * n,
            "resolved_at": [T0 + timedelta(minutes=30) if status == "resolved" else None] * n,
            "resolved_value": [99.0 if status == "resolved" else None] * n,
            "notified_at": [T0 if notified else None] * n,
            "last_notified_at": [T0 if notified else None] * n,
            "suppressed": [False] * n,
            "metric_name": ["uptime_percentage"] * n,
            "condition": ["<"] * n,
            "duration_minutes": [5] * n,
        },
        schema=PENDING_SCHEMA,
    )


def test_twenty_components_are_one_message() -> None:
    components = [f"svc-{i:02d}" for i in range(20)]
    messages = build_messages(pending_rows("Low Uptime", components))
    assert len(messages) == 1
    text = messages[0].text
    assert text.startswith("*Autopilot alerts* — 20 firing")
    assert "*Low Uptime* · warning · uptime_percentage &lt; 95 for 5 min · 20 components" in text
    assert all(f"`{c}` 93.25 since 2026-03-02 12:00 UTC" in text for c in components)
    assert sorted(messages[0].firing_ids) == list(range(1000, 1020)) and messages[0].resolved_ids == ()


def test_sections_order_and_kinds() -> None:
    frame = pl.concat(
        [
            pending_rows("Low Uptime", ["api"], status="resolved", rule_id=1),
            pending_rows("Critical Uptime", ["db"], rule_id=2, severity="critical"),
            pending_rows("Slow", ["web"], notified=True, rule_id=3),
        ]
    )
    [message] = build_messages(frame)
    lines = message.text.splitlines()
    assert lines[0] == "*Autopilot alerts* — 1 firing · 1 still firing · 1 resolved"
    headings = [line for line in lines if line.startswith(":")]
    assert [h.split("*")[1] for h in headings] == ["FIRING", "STILL FIRING", "RESOLVED"]
    assert "`api` fired 2026-03-02 12:00 UTC, resolved 2026-03-02 12:30 UTC (value 99)" in message.text
    assert set(message.firing_ids) == {2000, 3000} and message.resolved_ids == (1000,)


def test_long_lists_are_truncated_and_many_rules_split() -> None:
    many = build_messages(pending_rows("Low Uptime", [f"c{i:03d}" for i in range(100)]))
    assert len(many) == 1 and f"… and {100 - MAX_COMPONENTS_LISTED} more" in many[0].text
    assert len(many[0].firing_ids) == 100  # every row is covered even when not listed
    rules = pl.concat([pending_rows(f"rule {i:02d}", ["api"], rule_id=i + 1) for i in range(40)])
    split = build_messages(rules)
    assert len(split) == 3 and sum(len(m.firing_ids) for m in split) == 40
