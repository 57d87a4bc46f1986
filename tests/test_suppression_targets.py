# ruff: noqa: F811
"""Maintenance windows per monitored target (migration 0019): a window naming a target mutes only that
target's notifications, a window without one mutes every target as before. Real Postgres (the default
target is the test database, ``shop_b`` a second one), a real local Slack webhook, the CLI in process."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import psycopg
import pytest

from autopilot_pipeline import cli
from autopilot_pipeline.alerting import store
from autopilot_pipeline.alerting.engine import evaluate_alert_rules
from autopilot_pipeline.alerting.notifications import send_pending_notifications
from autopilot_pipeline.alerting.suppressions import Suppression, muting
from autopilot_pipeline.integrations.slack import SlackWebhook
from autopilot_pipeline.postgres import targets

from .test_alert_targets import NOW, add_rule, checks, shop_b  # noqa: F401 - fixture
from .test_slack import no_sleep, slack  # noqa: F401 - fixture


def test_a_targets_window_mutes_only_that_target():
    everywhere = Suppression(id=1, reason="all", starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    shop = Suppression(id=2, reason="shop", target="shop_b", starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    rule_on_shop = Suppression(id=3, reason="r", rule_id=7, target="shop_b", starts_at=NOW, ends_at=NOW)
    assert muting([shop], 7, "shop_b") is shop
    assert muting([shop], 7, "default") is None
    assert muting([shop], 7) is None  # target unknown: a target's window does not apply
    assert muting([everywhere, shop], 7, "shop_b") is shop  # the narrower window names the reason
    assert muting([everywhere, shop], 7, "default") is everywhere
    assert muting([everywhere, shop, rule_on_shop], 7, "shop_b") is rule_on_shop  # rule first
    assert muting([rule_on_shop], 8, "shop_b") is None
    assert "rule 7 on target shop_b" in rule_on_shop.describe()


def firing(conn: psycopg.Connection, rule: str) -> dict[str, tuple]:
    rows = conn.execute(
        "SELECT target, suppressed, suppression_id, notified_at FROM automation.alert_history "
        "WHERE rule_name = %s AND status = 'firing'",
        (rule,),
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_a_window_on_shop_b_mutes_its_alert_and_notifies_the_default_one(
    conn, shop_b, pg_url, slack, monkeypatch, capsys
):
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    add_rule(conn, "Api down", None)
    until = (NOW + timedelta(hours=1)).isoformat()
    assert cli.main(
        ["alerts", "silence", "--target", "shop_b", "--from", NOW.isoformat(), "--until", until,
         "--reason", "shop_b upgrade"]
    ) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("silence #") and "all rules on target shop_b" in out and "shop_b upgrade" in out
    (window,) = store.read_suppressions(conn)
    assert window.target == "shop_b" and window.rule_id is None

    checks(conn, "down", NOW)
    checks(shop_b, "down", NOW)
    evaluate_alert_rules(conn, NOW)
    alerts = firing(conn, "Api down")
    assert alerts["shop_b"][:2] == (True, window.id)
    assert alerts["default"][:2] == (False, None)

    webhook = SlackWebhook(slack.url, timeout_s=2, attempts=1, sleep=no_sleep)
    report = send_pending_notifications(conn, webhook, NOW + timedelta(minutes=1))
    assert report.muted == 1 and report.firing_notified == 1
    assert len(slack.texts) == 1 and "target `shop_b`" not in slack.texts[0]
    alerts = firing(conn, "Api down")
    assert alerts["default"][2] is not None and alerts["shop_b"][2] is None

    # the window ends: shop_b's alert, still firing, is announced then
    later = NOW + timedelta(hours=1, minutes=1)
    send_pending_notifications(conn, webhook, later)
    assert len(slack.texts) == 2 and "shop_b" in slack.texts[1]


def test_a_window_without_a_target_still_mutes_every_target(conn, shop_b, slack):
    add_rule(conn, "Api down", None)
    store.add_suppression(
        conn,
        Suppression(id=0, reason="all", starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=1)),
    )
    checks(conn, "down", NOW)
    checks(shop_b, "down", NOW)
    evaluate_alert_rules(conn, NOW)
    assert {t: a[0] for t, a in firing(conn, "Api down").items()} == {"default": True, "shop_b": True}
    webhook = SlackWebhook(slack.url, timeout_s=2, attempts=1, sleep=no_sleep)
    assert send_pending_notifications(conn, webhook, NOW).muted == 2 and slack.texts == []


def test_resolving_inside_a_targets_window_is_muted_only_there(conn, shop_b):
    add_rule(conn, "Api down", None)
    checks(conn, "down", NOW)
    checks(shop_b, "down", NOW)
    evaluate_alert_rules(conn, NOW)
    store.add_suppression(
        conn,
        Suppression(
            id=0,
            reason="r",
            target="shop_b",
            weekdays=tuple(range(1, 8)),
            start_time=time(0),
            end_time=time(0),
        ),
    )
    healthy = NOW + timedelta(hours=2)
    checks(conn, "healthy", healthy, minutes=5)
    checks(shop_b, "healthy", healthy, minutes=5)
    evaluate_alert_rules(conn, healthy)
    rows = dict(
        conn.execute(
            "SELECT target, resolved_suppressed FROM automation.alert_history WHERE status = 'resolved'"
        ).fetchall()
    )
    assert rows == {"default": False, "shop_b": True}


def test_cli_windows_errors_listing_and_removal(conn, shop_b, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    add_rule(conn, "Api down", None)
    bad = [
        (["--target", "nope", "--until", "2030-01-01T00:00:00+00:00"], "unknown target 'nope'"),
        (["--rule", "Nope", "--until", "2030-01-01T00:00:00+00:00"], "no alert rule 'Nope'"),
        (["--until", "2030-01-01T00:00:00"], "--until needs a time zone"),
        (["--until", "2030-01-01T00:00:00+00:00", "--weekdays", "1"], "give either --until"),
        (["--weekdays", "1,9", "--start", "02:00", "--end", "04:00"], "can never apply"),
        (["--weekdays", "6,7", "--start", "2am", "--end", "04:00"], "--start: not a time of day"),
    ]
    for args, message in bad:
        assert cli.main(["alerts", "silence", "--reason", "x", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (args, err)
    assert store.read_suppressions(conn) == []

    assert cli.main(
        ["alerts", "silence", "--reason", "batch", "--rule", "Api down", "--target", "shop_b",
         "--weekdays", "7", "--start", "02:00", "--end", "04:00", "--timezone", "Europe/Berlin"]
    ) == 0  # fmt: skip
    capsys.readouterr()
    (window,) = store.read_suppressions(conn)
    assert (window.target, window.weekdays, window.timezone) == ("shop_b", (7,), "Europe/Berlin")
    assert cli.main(["alerts", "silences"]) == 0
    assert "on target shop_b" in capsys.readouterr().out
    assert cli.main(["alerts", "unsilence", str(window.id)]) == 0
    assert cli.main(["alerts", "unsilence", str(window.id)]) == 2
    assert f"no maintenance window #{window.id}" in capsys.readouterr().err
    assert store.read_suppressions(conn) == []


def test_removing_a_target_removes_its_windows(conn, shop_b):
    store.add_suppression(
        conn, Suppression(id=0, reason="s", target="shop_b", starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    )
    store.add_suppression(
        conn, Suppression(id=0, reason="all", starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    )
    targets.remove_target(conn, "shop_b")
    assert [s.reason for s in store.read_suppressions(conn)] == ["all"]
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # a window names a target that exists
        store.add_suppression(
            conn, Suppression(id=0, reason="s", target="ghost", starts_at=NOW, ends_at=datetime.now(UTC))
        )
