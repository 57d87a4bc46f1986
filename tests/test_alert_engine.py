"""The alerting engine against real Postgres and a real local Slack receiver.

Timelines are table-driven like tests/test_alerting_core.py: one evaluation per minute from ``T0``; values
separated by spaces (``_`` = no sample); states after each evaluation: ``.`` inactive, ``p`` pending,
``F`` firing. Each evaluation is followed by a notifier pass, so Slack messages line up with minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import dagster as dg
import polars as pl
import psycopg
import pytest

from autopilot_pipeline import runner
from autopilot_pipeline.alerting import metric_catalog as catalog
from autopilot_pipeline.alerting import store
from autopilot_pipeline.alerting.engine import evaluate_alert_rules, fire_alert, resolve_alert
from autopilot_pipeline.alerting.notifications import send_pending_notifications
from autopilot_pipeline.alerting.suppressions import Suppression, active, muting, problem
from autopilot_pipeline.defs.alerting.resources import SlackResource
from autopilot_pipeline.defs.alerting.sensors import alert_notifications_sensor
from autopilot_pipeline.defs.partitions import AS_OF_TAG
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.integrations.slack import SlackWebhook
from autopilot_pipeline.postgres.io import copy_frame

from .test_slack import SlackReceiver, no_sleep

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday
CHAR = {"pending": "p", "firing": "F"}

# The seed's example, verbatim.
SEED_INSERT = """
INSERT INTO automation.alert_rules (
  name,
  description,
  metric_name,
  condition,
  threshold,
  duration_minutes,
  severity,
  notify_slack
) VALUES (
  'High Memory Usage',
  'Alert when memory usage exceeds 80%',
  'memory_usage_pct',
  '>',
  80,
  5,
  'warning',
  true
);
"""


@pytest.fixture
def slack() -> SlackReceiver:
    receiver = SlackReceiver()
    yield receiver
    receiver.close()


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def add_samples(
    conn: psycopg.Connection, component: str, series: str, metric: str = "memory_usage_pct", start: int = 0
) -> None:
    """One sample per minute (``_`` skips), inserted a second after it was taken."""
    rows = [(at(start + i), float(v)) for i, v in enumerate(series.split()) if v != "_"]
    frame = pl.DataFrame(
        {
            "sampled_at": [t for t, _ in rows],
            "source": [component] * len(rows),
            "metric_name": [metric] * len(rows),
            "value": [v for _, v in rows],
            "inserted_at": [t + timedelta(seconds=1) for t, _ in rows],
        },
        schema_overrides={"sampled_at": pl.Datetime("us", "UTC"), "inserted_at": pl.Datetime("us", "UTC")},
    )
    with conn.transaction():
        copy_frame(conn, "automation.metric_samples", frame)


def rule_id(conn: psycopg.Connection, name: str) -> int:
    return conn.execute("SELECT id FROM automation.alert_rules WHERE name = %s", (name,)).fetchone()[0]


def run(
    conn: psycopg.Connection,
    minutes: range,
    rule: str = "High Memory Usage",
    component: str = "api",
    webhook: SlackWebhook | None = None,
) -> str:
    """Evaluate (and notify) once per minute; the instance's state after each evaluation."""
    states = []
    for minute in minutes:
        result = evaluate_alert_rules(conn, at(minute))
        assert result.refused is None
        row = result.instances.filter((pl.col("rule") == rule) & (pl.col("component") == component))
        states.append(CHAR[row["state"][0]] if row.height else ".")
        if webhook is not None:
            send_pending_notifications(conn, webhook, at(minute))
    return "".join(states)


def history(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM automation.alert_history ORDER BY id").fetchall()


def webhook(slack: SlackReceiver, attempts: int = 1) -> SlackWebhook:
    return SlackWebhook(slack.url, timeout_s=2, attempts=attempts, sleep=no_sleep)


# ------------------------------------------------------------------------------------------- timelines


def test_seed_rule_goes_pending_firing_resolved_with_a_slack_message_each_way(conn, slack):
    conn.execute(SEED_INSERT)
    add_samples(conn, "api", "70 70 85 85 85 85 85 85 85 85 85 85 72 72 72")
    states = run(conn, range(15), webhook=webhook(slack))
    assert states == "..pppppFFFFF..."  # > 80 from 12:02; `for` 5 min -> fires at 12:07; resolves at 12:12

    assert len(slack.texts) == 2
    fired, resolved = slack.texts
    assert (
        "*FIRING* *High Memory Usage* · warning · memory_usage_pct &gt; 80 for 5 min · 1 component" in fired
    )
    assert "`api` 85 since 2026-01-05 12:07 UTC" in fired
    assert "*RESOLVED* *High Memory Usage*" in resolved
    assert "`api` fired 2026-01-05 12:07 UTC, resolved 2026-01-05 12:12 UTC (value 72)" in resolved

    [row] = history(conn)
    assert (
        row["rule_name"] == "High Memory Usage" and row["component"] == "api" and row["status"] == "resolved"
    )
    assert row["value"] == 85 and row["threshold"] == 80 and row["resolved_value"] == 72
    assert (row["fired_at"], row["resolved_at"], row["resolution"]) == (at(7), at(12), "condition cleared")
    assert row["message"] == (
        "High Memory Usage: memory_usage_pct is 85 (> 80) on api, pending since 2026-01-05 12:02 UTC"
    )
    assert (row["notified_at"], row["resolved_notified_at"], row["suppressed"]) == (at(7), at(12), False)
    assert conn.execute("SELECT count(*) FROM automation.alert_state").fetchone()[0] == 0


TIMELINES = [
    # (rule settings, samples, expected states); a sample counts for 5 minutes (then: no data)
    pytest.param({}, "85 85 70 85 85 85 85 85 85", "pp.pppppF", id="false-while-pending-resets"),
    pytest.param({"duration_minutes": 0}, "70 85 70", ".F.", id="zero-duration-fires-at-once"),
    pytest.param(
        {"duration_minutes": 1, "recovery_threshold": 75}, "85 85 85 78 78 74 78", "pFFFF..", id="hysteresis"
    ),
    pytest.param(
        {"duration_minutes": 1, "keep_firing_for_minutes": 2},
        "85 85 70 70 70 85 70 70 70",
        "pFFF.p...",
        id="keep-firing",
    ),
    pytest.param(
        {"duration_minutes": 10}, "85 _ _ _ _ _ _ 85 85 85 85", "ppppp..pppp", id="no-data-ok-resets"
    ),
    pytest.param(
        {"duration_minutes": 10, "no_data_policy": "keep_last"},
        "85 _ _ _ _ _ _ 85 85 85 85",
        "ppppppppppF",
        id="no-data-keep-last-freezes",
    ),
    pytest.param(
        {"duration_minutes": 2, "no_data_policy": "alert"},
        "70 _ _ _ _ _ _ _ _ 70",
        ".....ppFF.",
        id="no-data-alert",
    ),
]


@pytest.mark.parametrize(("settings", "series", "expected"), TIMELINES)
def test_timelines_through_the_database(conn, settings, series, expected):
    conn.execute(SEED_INSERT)
    for column, value in settings.items():  # fixed test-only column names
        conn.execute(
            f"UPDATE automation.alert_rules SET {column} = %s WHERE name = 'High Memory Usage'", (value,)
        )
    add_samples(conn, "api", series)
    # every evaluation reads the state back from Postgres: the database round trip must lose nothing
    assert run(conn, range(len(series.split()))) == expected


def test_restart_neither_repages_nor_loses_pending_progress(pg_url, slack):
    with psycopg.connect(pg_url, autocommit=True) as first:
        first.execute(SEED_INSERT)
        add_samples(first, "api", "85 " * 12)
        assert run(first, range(4), webhook=webhook(slack)) == "pppp"
        active_at = first.execute("SELECT active_at FROM automation.alert_state").fetchone()[0]
    assert active_at == at(0)

    # "restart": a new process has nothing in memory; everything comes back from Postgres
    with psycopg.connect(pg_url, autocommit=True) as second:
        assert run(second, range(4, 7), webhook=webhook(slack)) == "pFF"  # 12:05, as if never restarted
        assert len(slack.texts) == 1

    with psycopg.connect(pg_url, autocommit=True) as third:
        assert run(third, range(7, 12), webhook=webhook(slack)) == "FFFFF"
        assert len(slack.texts) == 1  # no re-page after the restart
        assert len(history(third)) == 1


def test_evaluations_out_of_time_order_are_refused(conn):
    assert evaluate_alert_rules(conn, at(5)).refused is None
    refused = evaluate_alert_rules(conn, at(5))
    assert refused.refused and "not after the last evaluation" in refused.refused
    assert evaluate_alert_rules(conn, at(4)).refused
    assert conn.execute("SELECT count(*) FROM automation.alert_evaluations").fetchone()[0] == 1


# ----------------------------------------------------------------------------------------- suppressions


def test_one_shot_suppression_mutes_notifications_but_history_shows_it(conn, slack):
    conn.execute(SEED_INSERT)
    conn.execute(
        "INSERT INTO automation.alert_suppressions (starts_at, ends_at, reason, created_by) "
        "VALUES (%s, %s, 'database upgrade', 'ops@example.com')",
        (at(5), at(20)),
    )
    add_samples(conn, "api", "70 70 85 85 85 85 85 85 85 85 85 85 72 72 72")
    assert run(conn, range(15), webhook=webhook(slack)) == "..pppppFFFFF..."  # evaluation is unchanged
    assert slack.requests == []
    [row] = history(conn)
    assert row["suppressed"] and row["suppression_id"] is not None and row["resolved_suppressed"]
    assert row["notified_at"] is None and row["resolved_notified_at"] is None
    # after the window nothing is left to send: the whole incident happened inside it
    assert send_pending_notifications(conn, webhook(slack), at(25)).messages_sent == 0


def test_alert_still_firing_when_the_window_ends_is_announced_then(conn, slack):
    conn.execute(SEED_INSERT)
    conn.execute(
        "INSERT INTO automation.alert_suppressions (starts_at, ends_at, reason) VALUES (%s, %s, 'deploy')",
        (at(0), at(10)),
    )
    add_samples(conn, "api", "85 " * 14)
    assert run(conn, range(14), webhook=webhook(slack)) == "pppppFFFFFFFFF"
    assert len(slack.texts) == 1 and "`api` 85 since 2026-01-05 12:05 UTC" in slack.texts[0]
    [row] = history(conn)
    assert row["suppressed"] and row["notified_at"] == at(
        10
    )  # muted at 12:05, announced when the window ended


def test_recurring_window_in_a_time_zone_mutes_only_its_rule(conn, slack):
    conn.execute(SEED_INSERT)
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes, "
        "severity, "
        "notify_slack) VALUES ('Busy CPU', 'cpu_usage_pct', '>', 90, 0, 'info', true)"
    )
    # Mondays 13:00-14:00 in Berlin (UTC+1 in January) = 12:00-13:00 UTC, for the memory rule only
    conn.execute(
        "INSERT INTO automation.alert_suppressions (rule_id, weekdays, start_time, end_time, timezone, "
        "reason) "
        "VALUES (%s, '{1}', '13:00', '14:00', 'Europe/Berlin', 'weekly batch job')",
        (rule_id(conn, "High Memory Usage"),),
    )
    add_samples(conn, "api", "85 " * 8)
    add_samples(conn, "api", "95 " * 8, metric="cpu_usage_pct")
    run(conn, range(8), webhook=webhook(slack))
    assert len(slack.texts) == 1
    assert "Busy CPU" in slack.texts[0] and "High Memory Usage" not in slack.texts[0]
    rows = {r["rule_name"]: r for r in history(conn)}
    assert rows["High Memory Usage"]["suppressed"] and not rows["Busy CPU"]["suppressed"]


SUPPRESSION_CASES = [
    # weekdays, start, end, zone, moment (UTC), active?
    ((1,), time(9), time(17), "UTC", datetime(2026, 1, 5, 16, 59, tzinfo=UTC), True),
    ((1,), time(9), time(17), "UTC", datetime(2026, 1, 5, 17, 0, tzinfo=UTC), False),
    ((1,), time(9), time(17), "UTC", datetime(2026, 1, 6, 10, 0, tzinfo=UTC), False),  # Tuesday
    (
        (5,),
        time(22),
        time(2),
        "UTC",
        datetime(2026, 1, 10, 1, 30, tzinfo=UTC),
        True,
    ),  # Fri 22:00 -> Sat 02:00
    ((5,), time(22), time(2), "UTC", datetime(2026, 1, 9, 1, 30, tzinfo=UTC), False),  # Friday 01:30
    ((7,), time(3), time(3), "UTC", datetime(2026, 1, 5, 2, 0, tzinfo=UTC), True),  # Sun 03:00 + 24 h
    ((1,), time(9), time(10), "America/New_York", datetime(2026, 7, 6, 13, 30, tzinfo=UTC), True),  # EDT
    ((1,), time(9), time(10), "America/New_York", datetime(2026, 1, 5, 13, 30, tzinfo=UTC), False),  # EST
]


@pytest.mark.parametrize(("weekdays", "start", "end", "zone", "moment", "expected"), SUPPRESSION_CASES)
def test_recurring_windows(weekdays, start, end, zone, moment, expected):
    s = Suppression(id=1, reason="r", weekdays=weekdays, start_time=start, end_time=end, timezone=zone)
    assert (active([s], moment) == [s]) is expected


def test_suppression_scope_and_problems():
    everything = Suppression(id=2, reason="all", starts_at=T0, ends_at=at(60))
    specific = Suppression(id=5, reason="one", rule_id=7, starts_at=T0, ends_at=at(60))
    assert muting([everything, specific], 7) is specific and muting([everything, specific], 8) is everything
    assert muting([specific], 8) is None
    bad = Suppression(
        id=3, reason="x", weekdays=(1,), start_time=time(1), end_time=time(2), timezone="Mars/Base"
    )
    assert problem(bad) == "unknown time zone 'Mars/Base'" and active([bad], T0) == []


# -------------------------------------------------------------------------------- grouping and Slack


def test_outage_across_twenty_components_is_one_message(conn, slack):
    conn.execute(SEED_INSERT)
    components = [f"svc-{i:02d}" for i in range(20)]
    for component in components:
        add_samples(conn, component, "85 " * 6)
    run(conn, range(6), webhook=webhook(slack))
    assert len(slack.requests) == 1
    text = slack.texts[0]
    assert "20 firing" in text and "· 20 components" in text
    assert all(f"`{c}`" in text for c in components)
    assert len(history(conn)) == 20


def test_down_webhook_never_blocks_evaluation_or_loses_the_message(conn, slack):
    conn.execute(SEED_INSERT)
    conn.execute("UPDATE automation.alert_rules SET duration_minutes = 0 WHERE name = 'High Memory Usage'")
    add_samples(conn, "api", "85 85 85")
    slack.script = [500, 500]
    assert run(conn, range(1)) == "F"
    report = send_pending_notifications(conn, webhook(slack, attempts=2), at(0))
    assert report.messages_sent == 0 and report.error == "Slack webhook: HTTP 500: server_error"
    [row] = history(conn)
    assert row["status"] == "firing" and row["notified_at"] is None
    assert row["notify_attempts"] == 1 and row["last_notify_error"] == report.error

    assert run(conn, range(1, 2)) == "F"  # evaluation went on
    report = send_pending_notifications(conn, webhook(slack), at(1))
    assert report.messages_sent == 1 and len(slack.texts) == 1 and "*FIRING*" in slack.texts[0]
    assert send_pending_notifications(conn, webhook(slack), at(2)).messages_sent == 0  # sent exactly once


def test_long_incident_is_repeated_at_the_repeat_interval(conn, slack):
    conn.execute(SEED_INSERT)
    conn.execute("UPDATE automation.alert_rules SET duration_minutes = 0, repeat_interval_minutes = 10")
    add_samples(conn, "api", "85 " * 25)
    run(conn, range(25), webhook=webhook(slack))
    assert len(slack.texts) == 3
    assert "*FIRING*" in slack.texts[0]
    assert all("*STILL FIRING*" in t and "since 2026-01-05 12:00 UTC" in t for t in slack.texts[1:])
    assert history(conn)[0]["last_notified_at"] == at(20)


def test_rules_without_notify_slack_or_without_webhook_send_nothing(conn, slack):
    conn.execute(SEED_INSERT)
    conn.execute("UPDATE automation.alert_rules SET duration_minutes = 0, notify_slack = false")
    add_samples(conn, "api", "85")
    run(conn, range(1), webhook=webhook(slack))
    assert slack.requests == [] and len(history(conn)) == 1
    conn.execute("UPDATE automation.alert_rules SET notify_slack = true")
    report = send_pending_notifications(conn, None, at(1))
    assert report.still_pending == 1 and "SLACK_WEBHOOK_URL" in (report.note or "")


# ------------------------------------------------------------------------------- bad rules, functions


def test_bad_rules_are_skipped_with_a_reason_and_the_others_run(conn):
    conn.execute(SEED_INSERT)
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes, "
        "recovery_threshold) VALUES ('Typo', 'memory_usage_pcnt', '>', 80, 0, NULL), "
        "('Wrong side', 'memory_usage_pct', '>', 80, 0, 90)"
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold) "
            "VALUES ('Bad op', 'memory_usage_pct', '>>', 1)"
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, duration_minutes) "
            "VALUES ('Negative', 'memory_usage_pct', '>', 1, -5)"
        )
    add_samples(conn, "api", "85 " * 6)
    for minute in range(6):
        result = evaluate_alert_rules(conn, at(minute))
    reasons = dict(zip(result.skipped["rule"], result.skipped["reason"], strict=True))
    assert reasons == {
        "Typo": "unknown metric 'memory_usage_pcnt' (not built in, and no automation.metric_samples rows "
        "use it)",
        "Wrong side": "recovery threshold 90.0 must be <= 80.0 for '>'",
    }
    assert result.firing == 1 and result.rules_evaluated == 7  # six defaults + the seed's rule
    logged = conn.execute(
        "SELECT skipped FROM automation.alert_evaluations ORDER BY id DESC LIMIT 1"
    ).fetchone()[0]
    assert {r["rule"] for r in logged} == {"Typo", "Wrong side"}


def test_fire_alert_and_resolve_alert(conn, slack):
    conn.execute(SEED_INSERT)
    alert_id = fire_alert(conn, "High Memory Usage", "worker", value=97.5, at=at(0))
    assert fire_alert(conn, "High Memory Usage", "worker", value=98, at=at(1)) == alert_id  # already open
    send_pending_notifications(conn, webhook(slack), at(1))
    assert len(slack.texts) == 1 and "`worker` 97.5" in slack.texts[0]
    assert resolve_alert(conn, alert_id, at=at(2), value=60)
    assert not resolve_alert(conn, alert_id, at=at(3))
    send_pending_notifications(conn, webhook(slack), at(3))
    assert len(slack.texts) == 2 and "*RESOLVED*" in slack.texts[1]
    [row] = history(conn)
    assert (row["status"], row["resolution"], row["resolved_at"]) == ("resolved", "resolved manually", at(2))
    assert conn.execute("SELECT count(*) FROM automation.alert_state").fetchone()[0] == 0
    with pytest.raises(LookupError):
        fire_alert(conn, "No such rule", "api")


def test_fired_alert_resolves_at_the_next_false_evaluation(conn):
    conn.execute(SEED_INSERT)
    add_samples(conn, "api", "50 50")
    fire_alert(conn, "High Memory Usage", "api", value=99, at=at(0))
    assert run(conn, range(1, 2)) == "."
    assert history(conn)[0]["resolution"] == "condition cleared"


def test_disabling_a_rule_resolves_its_alerts(conn):
    conn.execute(SEED_INSERT)
    conn.execute("UPDATE automation.alert_rules SET duration_minutes = 0")
    add_samples(conn, "api", "85 85")
    assert run(conn, range(1)) == "F"
    conn.execute("UPDATE automation.alert_rules SET enabled = false WHERE name = 'High Memory Usage'")
    assert run(conn, range(1, 2)) == "."
    [row] = history(conn)
    assert (row["status"], row["resolution"]) == ("resolved", "rule disabled")


# ------------------------------------------------------------------------------------- metric catalog


def _health_rows(conn: psycopg.Connection) -> None:
    """api in the hour before 13:00: 8 checks (2 down, 1 degraded), 1 error event; web: 2 healthy checks."""
    rows = []
    for i in range(8):
        status = "down" if i in (2, 5) else "degraded" if i == 7 else "healthy"
        rows.append(("api", "health_check", status, None if status == "down" else 100.0 * (i + 1), 5 + 7 * i))
    rows += [
        ("api", "error", "error", None, 30),
        ("web", "health_check", "healthy", 40.0, 10),
        ("web", "health_check", "healthy", 60.0, 50),
        ("api", "health_check", "down", None, -1),
    ]  # -1: 11:59
    frame = pl.DataFrame(
        [
            {
                "checked_at": at(60 + m),
                "source": s,
                "kind": k,
                "status": st,
                "response_time_ms": rt,
                "inserted_at": at(60 + m) + timedelta(seconds=1),
            }
            for s, k, st, rt, m in rows
        ],
        schema={
            "checked_at": pl.Datetime("us", "UTC"),
            "source": pl.String,
            "kind": pl.String,
            "status": pl.String,
            "response_time_ms": pl.Float64,
            "inserted_at": pl.Datetime("us", "UTC"),
        },
    )
    anomalies = pl.DataFrame(
        {
            "checked_at": [at(100), at(110), at(115)],
            "source": ["ai-ops"] * 3,
            "kind": ["anomaly"] * 3,
            "status": ["warning"] * 3,
            "metadata": [
                '{"component": "api", "metric": "response_time_ms", "confidence": 0.7}',
                '{"component": "api", "metric": "error_rate", "confidence": "0.93"}',
                '{"component": "web", "metric": "uptime", "confidence": "n/a"}',
            ],
            "inserted_at": [at(116)] * 3,
        },
        schema_overrides={"checked_at": pl.Datetime("us", "UTC"), "inserted_at": pl.Datetime("us", "UTC")},
    )
    migrations = pl.DataFrame(
        {
            "version": ["1", "2", "3"],
            "started_at": [at(70), at(80), at(10)],
            "status": ["failed", "success", "failed"],
        },
        schema_overrides={"started_at": pl.Datetime("us", "UTC")},
    )
    with conn.transaction():
        copy_frame(conn, "automation.health_log", frame)
        copy_frame(conn, "automation.health_log", anomalies)
        copy_frame(conn, "automation.migration_log", migrations)


def test_builtin_metrics_from_the_database(conn):
    _health_rows(conn)
    now = at(120)  # 14:00: the window is (13:00, 14:00]
    names = list(catalog.BUILTIN)
    inputs = store.read_metric_inputs(conn, catalog.sources_for(names), now)
    assert inputs.predictions is not None and inputs.predictions.is_empty()  # no predictions written yet
    values = {(m, c): v for m, c, v in catalog.metric_values(names, inputs).iter_rows()}
    api_rt = [100.0 * (i + 1) for i in range(8) if i not in (2, 5)]
    assert values == {
        ("uptime_percentage", "api"): 75.0,
        ("uptime_percentage", "web"): 100.0,
        ("degraded_percentage", "api"): 12.5,  # 1 of 8 checks; degraded still counts as up above
        ("degraded_percentage", "web"): 0.0,
        ("errors_per_hour", "api"): 3.0,
        ("errors_per_hour", "web"): 0.0,
        ("response_time_avg_ms", "api"): pytest.approx(sum(api_rt) / len(api_rt)),
        ("response_time_avg_ms", "web"): 50.0,
        ("response_time_p95_ms", "api"): pytest.approx(pl.Series(api_rt).quantile(0.95, "linear")),
        ("response_time_p95_ms", "web"): pytest.approx(59.0),
        ("migration_failures", "database"): 1.0,
        ("anomaly_confidence", "api"): 0.93,
    }


def test_default_rules_fire_on_health_data_and_predictions_are_noted(conn):
    _health_rows(conn)
    conn.execute("UPDATE automation.alert_rules SET duration_minutes = 0")
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold) "
        "VALUES ('Failure predicted', 'failure_probability', '>', 0.5), ('Anomaly', 'anomaly_confidence', "
        "'>=', 0.9)"
    )
    result = evaluate_alert_rules(conn, at(120))
    firing = {(r, c) for r, c in result.instances.select("rule", "component").iter_rows()}
    assert firing == {
        ("Low Uptime", "api"),
        ("Critical Uptime", "api"),
        ("Migration Failure", "database"),
        ("Anomaly", "api"),
    }
    assert not result.notes


# --------------------------------------------------------------------------------------------- Dagster


def test_alerting_job_reports_alerts_and_the_sensor_sends_them(pg_url, conn, slack, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path))
    conn.execute(SEED_INSERT)
    add_samples(conn, "api", "85 " * 7)
    add_samples(conn, "web", "85 " * 7)
    defs = runner.load_definitions()
    job = defs.resolve_job_def("alerting_job")
    schedule = defs.resolve_schedule_def("alerting_schedule")
    assert schedule.cron_schedule == "* * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.build_schedule_context(scheduled_execution_time=at(0)) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags[AS_OF_TAG] == at(0).isoformat()  # the tick is the evaluation time
    op = "alerting__alert_evaluations"
    with dg.DagsterInstance.ephemeral() as instance:
        for minute in range(6):
            result = job.execute_in_process(instance=instance, tags={AS_OF_TAG: at(minute).isoformat()})
            assert result.success
        [event] = result.asset_materializations_for_node(op)
    meta = event.metadata
    assert meta["firing"].value == 2 and meta["fired"].value == 2 and meta["pending"].value == 0
    table = meta["active_alerts"].value
    assert table.splitlines()[0] == "| state | severity | rule | component | value | active_at | fired_at |"
    assert "| firing | warning | High Memory Usage | api | 85.0 |" in table

    resources = {
        "postgres": PostgresResource(database_url=pg_url),
        "slack": SlackResource(webhook_url=slack.url),
    }
    with dg.build_sensor_context(resources=resources) as context:
        skip = alert_notifications_sensor(context)
    assert "1 message(s): 2 firing" in skip.skip_message
    assert len(slack.texts) == 1 and "· 2 components" in slack.texts[0]


def test_notification_sensor_without_webhook_says_so(pg_url):
    resources = {"postgres": PostgresResource(database_url=pg_url), "slack": SlackResource()}
    with dg.build_sensor_context(resources=resources) as context:
        skip = alert_notifications_sensor(context)
    assert skip.skip_message.startswith("0 message(s)")
