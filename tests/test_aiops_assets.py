# ruff: noqa: E402
"""The AI-ops assets for real: demo data through the health pipeline into Postgres, then ``aiops_job`` in
process. Tables, health_log rows for the seed's intelligent-alerting SQL, the alert engine's and the push's
views of them, idempotent re-runs, causality against the database, the UI metadata, Slack, the schedule
and sensor, and ``autopilot analyze`` / ``autopilot backtest``."""

from __future__ import annotations

import os

os.environ.setdefault(
    "OPENBLAS_NUM_THREADS", "1"
)  # before numpy loads: see docs/AI_OPS_GUIDE.md, Performance

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import psycopg
import pytest

from autopilot_pipeline import cli, runner
from autopilot_pipeline.aiops import pipeline
from autopilot_pipeline.aiops.risk import load_calibration
from autopilot_pipeline.alerting import metric_catalog as catalog
from autopilot_pipeline.alerting.store import read_metric_inputs
from autopilot_pipeline.defs.aiops.jobs import AIOPS_ASSETS, ANOMALIES, INSIGHTS, PREDICTIONS, TRENDS
from autopilot_pipeline.metrics.store import read_metrics_snapshot

from .demo_database import materialized_demo
from .test_slack import SlackReceiver

END = datetime(2026, 3, 4, 15, tzinfo=UTC)  # fixed data, whatever today is
SEED_ANOMALY_KEYS = {"isAnomaly", "confidence", "reason", "expectedValue", "actualValue", "severity"}
SEED_PREDICTION_KEYS = {"prediction", "probability", "timeframe", "recommendations"}
SEED_TREND_KEYS = {"trend", "slope", "confidence", "dataPoints"}


def partition(as_of: datetime) -> str:
    """The default target's AI-ops partition whose analysis time is ``as_of`` (the hour ending then)."""
    return f"default|{runner.hour_key(as_of - timedelta(hours=1))}"


def instance_with_default() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("targets", ["default"])
    return instance


def run_aiops(as_of: datetime = END, only: list[dg.AssetKey] | None = None) -> dg.ExecuteInProcessResult:
    definition = runner.load_definitions().resolve_job_def("aiops_job")
    with instance_with_default() as instance:
        return definition.execute_in_process(
            instance=instance,
            partition_key=partition(as_of),
            asset_selection=only,
            run_config=runner.QUIET_LOGGERS,
        )


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


@pytest.fixture(scope="module")
def aiops_db(
    pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dg.ExecuteInProcessResult]]:
    """Four days of demo data for three components (five injected incidents in the last two days), the
    hourly health tables materialized, and one aiops_job run at END. Tests only read, or roll back."""
    with materialized_demo(pg_server, tmp_path_factory.mktemp("state"), END, "autopilot_aiops") as url:
        result = run_aiops()
        assert result.success
        yield url, result


@pytest.fixture
def db(aiops_db: tuple[str, dg.ExecuteInProcessResult]) -> Iterator[psycopg.Connection]:
    with psycopg.connect(aiops_db[0], autocommit=True) as connection:
        yield connection


def _rows(conn: psycopg.Connection, query: str) -> list[tuple]:
    return conn.execute(query).fetchall()


# ------------------------------------------------------------------------------------------------ tables


def test_tables_hold_the_analysis_of_as_of(aiops_db, db):
    scored = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_anomaly), min(bucket_start), max(bucket_start), "
        "count(DISTINCT (component, metric)), min(scored_at), max(scored_at) FROM analytics.anomalies"
    ).fetchone()
    n, found, first, last, series, s1, s2 = scored
    assert series == 24  # 3 components x (uptime, degraded share, error ratio, p95, avg + 3 custom metrics)
    assert last == END - timedelta(hours=1) and first >= END - timedelta(days=7)
    assert s1 == s2 == END and 0 < found < n / 10
    assert _rows(db, "SELECT count(*) FROM analytics.anomalies WHERE is_anomaly AND confidence < 0.5") == [
        (0,)
    ]
    assert _rows(
        db, "SELECT count(*) FROM analytics.anomalies WHERE NOT is_anomaly AND confidence >= 0.5"
    ) == [(0,)]

    trends = _rows(
        db,
        "SELECT window_hours, count(*) FROM analytics.trends WHERE analyzed_at = '2026-03-04 15:00+00' GROUP BY 1 ORDER BY 1",
    )
    assert trends == [(24, 24), (168, 24)]

    preds = db.execute(
        "SELECT component, metric, probability, forecast FROM analytics.failure_predictions WHERE predicted_at = %s",
        (END,),
    ).fetchall()
    assert {m for _, m, _, _ in preds} == {
        "uptime_pct",
        "error_ratio",
        "p95_ms",
        "avg_ms",
        "memory_usage_pct",
        "cpu_usage_pct",
    }
    for _c, _m, p, band in preds:
        assert 0.0 <= p <= 1.0 and len(band) == 24
        first_hour = band[0]
        assert datetime.fromisoformat(first_hour["bucket_start"]) == END
        for b in band:
            assert b["lower_95"] <= b["lower_80"] <= b["forecast"] <= b["upper_80"] <= b["upper_95"]

    row = db.execute("SELECT health, insights, facts, ai_status FROM analytics.insights").fetchone()
    health, doc, facts, ai_status = row
    assert {"summary", "health", "migrations", "recommendations"} <= set(doc) and doc["health"] == health
    assert set(doc["migrations"]) >= {"total", "failed", "successRate"}
    assert doc["summary"].startswith(f"System processed {facts['healthChecks']:,} health checks")
    assert ai_status == "disabled" and "aiAnalysis" not in doc


def test_anomalies_reach_health_log_for_the_seeds_intelligent_alerting(db):
    rows = db.execute(
        "SELECT h.checked_at, h.status, h.metadata, a.bucket_start, a.confidence FROM automation.health_log h "
        "JOIN analytics.anomalies a ON a.component = h.metadata->>'component' AND a.metric = h.metadata->>'metric' "
        "AND a.bucket_start = h.checked_at - interval '1 hour' "
        "WHERE h.source = 'ai-ops' AND h.kind = 'anomaly'"
    ).fetchall()
    found = db.execute("SELECT count(*) FROM analytics.anomalies WHERE is_anomaly").fetchone()[0]
    assert len(rows) == found > 0
    for _checked, status, meta, bucket, confidence in rows:
        assert {
            "component",
            "metric",
            "confidence",
            "expectedValue",
            "actualValue",
            "severity",
            "reason",
        } <= set(meta)
        assert status == meta["severity"] and meta["confidence"] == pytest.approx(confidence, abs=1e-4)
        assert datetime.fromisoformat(meta["bucketStart"]) == bucket
    # the seed's SQL, with a fixed "now" at the hour after the worst anomaly
    worst = db.execute(
        "SELECT checked_at FROM automation.health_log WHERE source = 'ai-ops' ORDER BY (metadata->>'confidence')::float8 DESC LIMIT 1"
    ).fetchone()[0]
    hits = db.execute(
        "SELECT count(*) FROM automation.health_log h WHERE h.source = 'ai-ops' AND h.kind = 'anomaly' "
        "AND h.metadata->>'confidence' > '0.8' AND h.checked_at > %s - INTERVAL '1 hour'",
        (worst,),
    ).fetchone()[0]
    assert hits >= 1


def test_alert_engine_and_push_see_the_ai_ops_metrics(db):
    worst = db.execute(
        "SELECT checked_at, metadata->>'component', (metadata->>'confidence')::float8 FROM automation.health_log "
        "WHERE source = 'ai-ops' ORDER BY (metadata->>'confidence')::float8 DESC, checked_at LIMIT 1"
    ).fetchone()
    inputs = read_metric_inputs(db, {catalog.Source.ANOMALIES, catalog.Source.PREDICTIONS}, worst[0])
    values = catalog.metric_values(["anomaly_confidence"], inputs)
    assert (worst[1], pytest.approx(worst[2], abs=1e-4)) in [(c, v) for _m, c, v in values.iter_rows()]
    probabilities = catalog.metric_values(
        ["failure_probability"], read_metric_inputs(db, {catalog.Source.PREDICTIONS}, END)
    )
    assert probabilities.height == 3  # one per component: the latest prediction, max over its metrics

    snapshot = read_metrics_snapshot(db, END)
    assert snapshot.failure_probability is not None and snapshot.failure_probability.height == 18
    logged = db.execute("SELECT count(*) FROM automation.health_log WHERE source = 'ai-ops'").fetchone()[0]
    assert snapshot.anomalies_total is not None and snapshot.anomalies_total["value"].sum() == logged


def test_rerunning_is_idempotent(aiops_db, db):
    def state() -> tuple:
        return (
            _rows(db, "SELECT * FROM analytics.anomalies ORDER BY bucket_start, component, metric"),
            _rows(
                db,
                "SELECT checked_at, status, message, metadata FROM automation.health_log WHERE source = 'ai-ops' ORDER BY 1, 3",
            ),
            _rows(
                db,
                "SELECT component, metric, probability, forecast FROM analytics.failure_predictions ORDER BY 1, 2",
            ),
        )

    before = state()
    again = run_aiops(only=[ANOMALIES, PREDICTIONS])  # the hourly refresh
    assert again.success
    assert state() == before  # same window replaced with the same rows: nothing added, nothing lost


def test_scores_are_causal_against_the_database(aiops_db, db):
    cut = END - timedelta(hours=8)
    base = pipeline.run_anomalies(db, END, write=False).scores
    with db.transaction(force_rollback=True):
        db.execute("UPDATE analytics.uptime_hourly SET uptime_pct = 0 WHERE bucket_start >= %s", (cut,))
        db.execute(
            "UPDATE analytics.response_times_hourly SET p95_ms = p95_ms * 50 WHERE bucket_start >= %s", (cut,)
        )
        changed = pipeline.run_anomalies(db, END, write=False).scores
    early = pl.col("bucket_start") < cut
    assert changed.filter(early).equals(base.filter(early))  # the past did not move
    assert changed.filter(~early)["is_anomaly"].sum() > base.filter(~early)["is_anomaly"].sum()


# ---------------------------------------------------------------------------------------------- metadata


def _calibrated() -> bool:
    return load_calibration().targets_met


def test_each_analytic_asset_shows_a_table_and_a_plot(aiops_db):
    result = aiops_db[1]
    for node in ("analytics__anomalies", "analytics__trends", "analytics__failure_predictions"):
        meta = metadata(result, node)
        assert meta["plot"].startswith("![") and "(data:image/png;base64," in meta["plot"], node
        assert meta["findings"].startswith("|") or meta["findings"] == "_no rows_", node
        assert meta["as_of"] == END.isoformat()
    anomalies = metadata(result, "analytics__anomalies")
    assert anomalies["anomalies"] == anomalies["health_log_rows"] > 0
    assert "| bucket_start | component | metric | severity |" in anomalies["findings"]
    preds = metadata(result, "analytics__failure_predictions")
    # the column says what the number is: a risk score until the calibration met its targets
    name = "probability" if _calibrated() else "risk_score"
    assert preds["predictions"] == 18 and 0.0 <= preds[f"max_{name}"] <= 1.0
    assert f"| {name} |" in preds["findings"]
    opts = metadata(result, "aiops__optimizations")
    assert {"totalOptimizations", "optimizations", "estimatedImpact"} <= set(opts["optimize_system"])
    insights = metadata(result, "analytics__insights")
    assert insights["llm_status"] == "disabled" and insights["slack"].startswith("not configured")
    assert insights["insights"]["summary"] == insights["summary"]


def test_slack_summary_is_posted_by_the_insights_asset(aiops_db):
    from autopilot_pipeline.defs.aiops.assets import insights
    from autopilot_pipeline.defs.aiops.resources import AiopsResource, LLMResource
    from autopilot_pipeline.defs.alerting.resources import SlackResource
    from autopilot_pipeline.defs.resources import PostgresResource

    receiver = SlackReceiver()
    try:
        result = dg.materialize(
            [insights],
            resources={
                "postgres": PostgresResource(database_url=aiops_db[0]),
                "aiops": AiopsResource(),
                "llm": LLMResource(),
                "slack": SlackResource(webhook_url=receiver.url, backoff_seconds=0.0),
            },
            partition_key=partition(END),
            instance=instance_with_default(),
        )
        assert result.success
        assert len(receiver.texts) == 1
        text = receiver.texts[0]
        meta = metadata(result, "analytics__insights")
        assert text.startswith("🤖 *AI Ops Analysis Complete*") and f"health: *{meta['health']}*" in text
        assert meta["summary"] in text and meta["slack"] == "delivered"

        receiver.script = [500, 500, 500]  # Slack down: the insights still succeed, the failure is noted
        down = dg.materialize(
            [insights],
            resources={
                "postgres": PostgresResource(database_url=aiops_db[0]),
                "aiops": AiopsResource(),
                "llm": LLMResource(),
                "slack": SlackResource(webhook_url=receiver.url, backoff_seconds=0.0),
            },
            partition_key=partition(END),
            instance=instance_with_default(),
        )
        meta = metadata(down, "analytics__insights")
        assert down.success and meta["slack"] == "failed" and "HTTP 500" in meta["slack_error"]
        assert "secret" not in meta["slack_error"]
    finally:
        receiver.close()


# -------------------------------------------------------------------------------------- orchestration


def test_automation_runs_each_hour_after_its_health_tables_and_the_rest_every_six_hours():
    """Declarative automation replaces the schedule and the run-status sensor: the conditions, evaluated
    as the daemon would, request the right partitions at the right ticks."""
    defs = runner.load_definitions()
    sensor = defs.resolve_sensor_def("automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    health = [
        dg.AssetKey(["analytics", n])
        for n in (
            "uptime_hourly",
            "error_rates_hourly",
            "response_times_hourly",
            "metric_samples_hourly",
            "health_score_hourly",
        )
    ]
    selection = dg.AssetSelection.assets(*AIOPS_ASSETS)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("targets", ["default"])
        noon = datetime(2026, 3, 4, 12, 0, 30, tzinfo=UTC)
        result = dg.evaluate_automation_conditions(
            defs, instance, selection, evaluation_time=noon - timedelta(minutes=1)
        )
        assert result.total_requested == 0  # nothing analysed before its inputs exist
        for key in health:  # the health job finishes hour 11 at 12:02
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition="default|2026-03-04-11:00")
            )
        result = dg.evaluate_automation_conditions(
            defs, instance, selection, evaluation_time=noon + timedelta(minutes=2), cursor=result.cursor
        )
        assert result.get_requested_partitions(ANOMALIES) == {"default|2026-03-04-11:00"}
        assert result.get_requested_partitions(PREDICTIONS) == {"default|2026-03-04-11:00"}
        assert result.get_requested_partitions(TRENDS) == {
            "default|2026-03-04-11:00"
        }  # 12:00 is a 6-hourly tick
        assert result.get_num_requested(INSIGHTS) == 1
        for key in [ANOMALIES, PREDICTIONS, TRENDS]:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition="default|2026-03-04-11:00")
            )
        for key in health:  # an hour later (13:00 is not a 6-hourly tick): only the hourly analysis
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition="default|2026-03-04-12:00")
            )
        result = dg.evaluate_automation_conditions(
            defs,
            instance,
            selection,
            evaluation_time=noon + timedelta(hours=1, minutes=2),
            cursor=result.cursor,
        )
        assert result.get_requested_partitions(ANOMALIES) == {"default|2026-03-04-12:00"}
        assert result.get_num_requested(TRENDS) == 0 and result.get_num_requested(INSIGHTS) == 0

    job = defs.resolve_job_def("aiops_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        k.to_user_string() for k in AIOPS_ASSETS
    }
    specs = {s.key: s for s in defs.resolve_all_asset_specs()}
    assert {specs[k].group_name for k in AIOPS_ASSETS} == {"aiops"}


def test_as_of_defaults_to_the_end_of_old_data(db):
    assert pipeline.resolve_as_of(db, None, now=datetime(2026, 11, 1, tzinfo=UTC)) == END
    assert pipeline.resolve_as_of(db, None, now=datetime(2026, 3, 4, 9, 30, tzinfo=UTC)) == END - timedelta(
        hours=6
    )
    assert pipeline.resolve_as_of(db, datetime(2026, 3, 1, 7, 45, tzinfo=UTC)) == datetime(
        2026, 3, 1, 7, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="no time zone"):
        pipeline.resolve_as_of(db, datetime(2026, 3, 1, 7))


# ---------------------------------------------------------------------------------------------------- CLI


def _cli(capsys, monkeypatch, url: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", url)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("task", "check"),
    [
        ("detect_anomalies", lambda r: r and all(set(a) >= SEED_ANOMALY_KEYS and a["isAnomaly"] for a in r)),
        ("predict_failures", lambda r: len(r) == 18 and all(set(p) >= SEED_PREDICTION_KEYS for p in r)),
        ("analyze_trends", lambda r: len(r) == 48 and all(set(t) >= SEED_TREND_KEYS for t in r)),
        ("generate_insights", lambda r: {"summary", "health", "migrations", "recommendations"} <= set(r)),
        ("optimize_system", lambda r: {"totalOptimizations", "optimizations", "estimatedImpact"} <= set(r)),
    ],
)
def test_analyze_prints_the_seed_json(aiops_db, capsys, monkeypatch, task, check):
    code, out, err = _cli(
        capsys, monkeypatch, aiops_db[0], "analyze", task, "--json", "--as-of", END.isoformat()
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["task"] == task and doc["asOf"] == END.isoformat()
    assert check(doc["result"])


def test_analyze_matches_the_assets_and_reads_well(aiops_db, db, capsys, monkeypatch):
    code, out, _ = _cli(
        capsys, monkeypatch, aiops_db[0], "analyze", "detect_anomalies", "--json", "--as-of", END.isoformat()
    )
    stored = db.execute("SELECT count(*) FROM analytics.anomalies WHERE is_anomaly").fetchone()[0]
    assert code == 0 and len(json.loads(out)["result"]) == stored  # the CLI and the asset agree

    code, out, _ = _cli(
        capsys, monkeypatch, aiops_db[0], "analyze", "predict_failures", "--as-of", END.isoformat()
    )
    # not a probability until the shipped calibration met its targets
    assert code == 0 and ("Failure probabilities" if _calibrated() else "Failure risk scores") in out
    code, out, _ = _cli(
        capsys, monkeypatch, aiops_db[0], "analyze", "generate_insights", "--as-of", END.isoformat()
    )
    assert code == 0 and out.startswith("Health: ") and "not configured (set OPENAI_API_KEY)" in out

    code, _, err = _cli(capsys, monkeypatch, aiops_db[0], "analyze", "analyze_trends", "--as-of", "yesterday")
    assert code == 2 and "not an ISO 8601 time" in err and len(err.strip().splitlines()) == 1


def test_backtest_scores_the_demo_incidents(aiops_db, capsys, monkeypatch):
    code, out, err = _cli(capsys, monkeypatch, aiops_db[0], "backtest", "--json", "--no-calibration")
    assert code == 0, err
    report = json.loads(out)
    detection = report["detection"]
    assert detection["incidents"] == 5 and detection["detected"] == 5
    assert (
        detection["falseAlarms"] <= 1
    )  # 1.2 component-weeks of scored data here; the target is <= 1 per week
    (lead,) = report["leadTimes"]  # one degradation in this data
    assert lead["failureAt"] is not None and lead["leadHours"] is not None and lead["leadHours"] >= 1
    assert report["calibration"] is None
