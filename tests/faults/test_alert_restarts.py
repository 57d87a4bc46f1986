"""Issue 10 point 3: an alert process killed (SIGKILL) and restarted every few evaluations produces the
same pending/firing timeline and the same Slack messages as one that ran uninterrupted: none lost, none
twice. Sample values NaN, +Inf and -Inf behave as in Prometheus (IEEE comparisons: NaN compares false,
+Inf is above every finite threshold, -Inf below)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from ..conftest import TEMPLATE, _create_database, _drop_database
from ..test_alert_engine import add_samples
from .alert_driver import drive
from .conftest import ROOT, Receiver

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MINUTES = 14
#        minute 0  1  2  3  4  5   6   7   8   9    10 11 12 13
SERIES = "70 85 85 85 85 nan inf inf inf -inf 90 90 90 90"
HIGH = ".ppFF.ppF.ppFF"  # > 80 for 2 min: NaN compares false, +Inf is above 80, -Inf is not
LOW = ".........F...."  # < 50 at once: only -Inf


@pytest.fixture
def two_databases(pg_server: str) -> Iterator[tuple[str, str]]:
    names = [f"autopilot_restart_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    urls = [_create_database(pg_server, n, template=TEMPLATE) for n in names]
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE automation.alert_rules SET enabled = false")  # only ours below
            conn.execute(
                "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, "
                "duration_minutes, severity, notify_slack) VALUES "
                "('High', 'memory_usage_pct', '>', 80, 2, 'warning', true), "
                "('Low', 'memory_usage_pct', '<', 50, 0, 'critical', true)"
            )
            add_samples(conn, "api", SERIES)
    yield urls[0], urls[1]
    for name in names:
        _drop_database(pg_server, name)


def timeline(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return {
            "evaluations": conn.execute(
                "SELECT evaluated_at, pending, firing, fired, resolved FROM automation.alert_evaluations "
                "ORDER BY evaluated_at"
            ).fetchall(),
            "history": conn.execute(
                "SELECT rule_name, component, status, value::text, fired_at, resolved_at, "
                "resolved_value::text, notified_at IS NOT NULL, resolved_notified_at IS NOT NULL "
                "FROM automation.alert_history ORDER BY fired_at, rule_name"
            ).fetchall(),
        }


def states(url: str, rule: str) -> str:
    """Per minute: 'F' while the rule's instance was firing, else '.', from the stored history."""
    with psycopg.connect(url) as conn:
        fired = conn.execute(
            "SELECT fired_at, resolved_at FROM automation.alert_history WHERE rule_name = %s", (rule,)
        ).fetchall()
    out = []
    for minute in range(MINUTES):
        now = T0.replace(minute=minute)
        out.append("F" if any(f <= now and (r is None or now < r) for f, r in fired) else ".")
    return "".join(out)


def run_killed_every(url: str, webhook: str, every: int) -> int:
    """Run the driver, SIGKILL it after every ``every`` finished minutes, restart; returns the kills."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    while True:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.alert_driver", url, webhook, T0.isoformat(), str(MINUTES)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        done = 0
        for line in proc.stdout:
            done += line.startswith("done ")
            if done == every:
                proc.send_signal(signal.SIGKILL)  # mid-way through the next minute's evaluation
                kills += 1
                break
        proc.wait(60)
        proc.stdout.close()
        if proc.returncode == 0:
            return kills
        assert proc.returncode == -signal.SIGKILL, proc.returncode


@pytest.mark.slow
def test_restarts_change_nothing(two_databases: tuple[str, str]) -> None:
    calm_url, crash_url = two_databases
    calm, crashy = Receiver(), Receiver()
    try:
        drive(calm_url, calm.url, T0, MINUTES, say=lambda _s: None)
        kills = run_killed_every(crash_url, crashy.url, every=3)
        assert kills == MINUTES // 3
        assert timeline(crash_url) == timeline(calm_url)
        assert crashy.texts == calm.texts  # the same messages, in the same order: 0 lost, 0 twice
        # High fires at 3, 8, 12 and resolves at 5, 9; Low fires at 9 (one message with High's resolution)
        # and resolves at 10
        assert len(calm.texts) == 6
    finally:
        calm.close()
        crashy.close()
    assert states(calm_url, "High") == HIGH.replace("p", ".")
    assert states(calm_url, "Low") == LOW


def test_non_finite_samples_compare_as_in_prometheus(two_databases: tuple[str, str]) -> None:
    """In-process and quick: the per-minute states of both rules, pending included."""
    from autopilot_pipeline.alerting.engine import evaluate_alert_rules

    url, _ = two_databases
    seen = {"High": [], "Low": []}
    with psycopg.connect(url, autocommit=True) as conn:
        for minute in range(MINUTES):
            result = evaluate_alert_rules(conn, T0.replace(minute=minute))
            by_rule = {r["rule"]: r["state"] for r in result.instances.iter_rows(named=True)}
            for rule, marks in seen.items():
                marks.append({"pending": "p", "firing": "F"}.get(by_rule.get(rule, ""), "."))
    assert "".join(seen["High"]) == HIGH
    assert "".join(seen["Low"]) == LOW
