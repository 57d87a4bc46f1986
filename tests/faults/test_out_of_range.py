"""Issue 10 point 4: impossible numbers are quarantined with a reason, never averaged; rule thresholds
must be finite; component names are trimmed once; rows of unknown kinds are counted, not dropped.

Rows go through the real hourly health job (Dagster in process) into a real Postgres database.
"""

from __future__ import annotations

import logging
import math
import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import psycopg
import pytest

from autopilot_pipeline import runner
from autopilot_pipeline.alerting.engine import evaluate_alert_rules
from autopilot_pipeline.postgres.io import copy_frame

H = datetime(2026, 3, 2, 10, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.fixture
def pipeline_env(pg_url: str, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("AUTOPILOT_MAX_RESPONSE_MS", raising=False)
    return pg_url


def load(conn: psycopg.Connection, rows: list[tuple]) -> None:
    frame = pl.DataFrame(
        rows,
        schema={
            "checked_at": pl.Datetime("us", "UTC"),
            "source": pl.String,
            "kind": pl.String,
            "status": pl.String,
            "response_time_ms": pl.Float64,
        },
        orient="row",
    ).with_columns((pl.col("checked_at") + timedelta(seconds=2)).alias("inserted_at"))
    with conn.transaction():
        copy_frame(conn, "automation.health_log", frame)


def run_hour() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        assert runner.run_job_range(
            instance, "health_hourly_job", "2026-03-02-10:00", "2026-03-02-10:00"
        ).success


def reasons(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT reason, count(*) FROM analytics.quarantine GROUP BY reason").fetchall())


ROWS = [
    (H + 1 * M, "api", "health_check", "healthy", 100.0),
    (H + 2 * M, "api ", "health_check", "healthy", 300.0),  # trailing space: the same component
    (H + 3 * M, " api", "health_check", "degraded", 200.0),
    (H + 4 * M, "api", "health_check", "healthy", 1e308),  # finite, but no check takes 10^300 years
    (H + 5 * M, "api", "health_check", "healthy", float("inf")),
    (H + 6 * M, "api", "health_check", "healthy", float("nan")),
    (H + 7 * M, "api", "health_check", "healthy", -1.0),
    (H + 8 * M, "api", "health_check", "healthy", 3_600_001.0),  # just over the 1 h default ceiling
    (H + 9 * M, "api", "heartbeat", "healthy", 50.0),  # a kind nobody told us about
    (H + 10 * M, "ai-ops", "anomaly", "warning", None),  # AI-ops output: ignored on purpose
]


def test_impossible_values_are_quarantined_and_averages_stay_finite(pipeline_env, conn) -> None:
    load(conn, ROWS)
    run_hour()
    assert reasons(conn) == {
        "response time above ceiling": 2,
        "non-finite response time": 2,
        "negative response time": 1,
        "unknown kind": 1,
    }
    (row,) = conn.execute(
        "SELECT component, samples, avg_ms, max_ms FROM analytics.response_times_hourly"
    ).fetchall()
    assert row == ("api", 3, 200.0, 300.0)  # 'api ', ' api' and 'api' are one component
    assert conn.execute("SELECT array_agg(DISTINCT component) FROM analytics.uptime_hourly").fetchone() == (
        ["api"],
    )
    assert all(
        math.isfinite(v) for (v,) in conn.execute("SELECT health_score FROM analytics.health_score_hourly")
    )
    # nothing lost: every input row except the ignored AI-ops finding is either analysed or quarantined
    (checks,) = conn.execute("SELECT sum(checks) FROM analytics.uptime_hourly").fetchone()
    assert checks + sum(reasons(conn).values()) == len(ROWS) - 1


def test_the_ceiling_is_a_setting(pipeline_env, conn, monkeypatch) -> None:
    monkeypatch.setenv("AUTOPILOT_MAX_RESPONSE_MS", "250")
    load(conn, ROWS[:3])
    run_hour()
    assert reasons(conn) == {"response time above ceiling": 1}


def test_a_bad_ceiling_is_refused(pipeline_env, monkeypatch) -> None:
    from autopilot_pipeline.errors import AutopilotError
    from autopilot_pipeline.health.settings import HealthSettings

    for bad in ("inf", "-5", "nan", "fast"):
        monkeypatch.setenv("AUTOPILOT_MAX_RESPONSE_MS", bad)
        with pytest.raises(AutopilotError, match="AUTOPILOT_MAX_RESPONSE_MS"):
            HealthSettings.from_env(os.environ)


def test_infinite_rule_thresholds_are_skipped_with_a_logged_reason(conn, caplog) -> None:
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes) "
        "VALUES ('always', 'uptime_percentage', '<', 'Infinity', 0), "
        "       ('never', 'uptime_percentage', '>', '-Infinity', 0), "
        "       ('nan', 'uptime_percentage', '>', 'NaN', 0)"
    )
    with caplog.at_level(logging.WARNING):
        result = evaluate_alert_rules(conn, H + 30 * M)
    skipped = dict(zip(result.skipped["rule"], result.skipped["reason"], strict=True))
    assert set(skipped) == {"always", "never", "nan"}
    assert all("finite" in reason for reason in skipped.values())
    assert sum("skipped" in r.message and "finite" in r.message for r in caplog.records) == 3
    states = conn.execute(
        "SELECT count(*) FROM automation.alert_state s JOIN automation.alert_rules r ON r.id = s.rule_id "
        "WHERE r.name IN ('always', 'never', 'nan')"
    ).fetchone()
    assert states == (0,)
