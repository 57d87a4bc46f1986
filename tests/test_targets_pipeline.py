"""Two monitored databases through the pipeline for real: one test server hosts the pipeline's database (the
target ``default``) and a second application database (``shop_b``); a third target points at a closed port."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import psycopg
import pytest

from autopilot_pipeline import runner
from autopilot_pipeline.defs.health.schedules import health_hourly_schedule
from autopilot_pipeline.defs.health.sensors import health_log_sensor
from autopilot_pipeline.defs.partitions import AS_OF_TAG, RANGE_END, RANGE_START
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.integrations.prometheus_local import LocalPrometheus, free_port
from autopilot_pipeline.postgres import targets
from autopilot_pipeline.postgres.io import copy_frame

from .conftest import TEMPLATE, _create_database, _drop_database
from .health_fixture import H10, H11, frame
from .prometheus_stack import needs_prometheus, prometheus_stack_fixture  # noqa: F401 - fixture


@pytest.fixture
def shop_b(pg_server: str, pg_url: str, tmp_path, monkeypatch) -> Iterator[str]:
    """The pipeline on ``pg_url`` with a second monitored database ``shop_b`` (its URL in SHOP_B_URL)."""
    name = f"autopilot_shop_b_{uuid.uuid4().hex[:8]}"
    url = _create_database(pg_server, name, template=TEMPLATE)
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SHOP_B_URL", url)
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        targets.add_target(conn, "shop_b", url_env="SHOP_B_URL")
    yield url
    _drop_database(pg_server, name)


def load(url: str, rows: pl.DataFrame) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        copy_frame(conn, "automation.health_log", rows.drop("id"))


def run(instance: dg.DagsterInstance, key: str) -> dg.ExecuteInProcessResult:
    job = runner.load_definitions().resolve_job_def("health_hourly_job")
    return job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)


def uptime(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT target, bucket_start, component, checks, up_checks FROM analytics.uptime_hourly ORDER BY 1, 2, 3"
    ).fetchall()


def test_a_health_run_per_target_writes_each_targets_rows(shop_b, pg_url, conn):
    load(pg_url, frame())
    load(shop_b, frame().filter(pl.col("source") == "web"))  # shop_b: only the web checks
    with dg.DagsterInstance.ephemeral() as instance:
        assert runner.ensure_targets(instance) == ["default", "shop_b"]
        assert sorted(instance.get_dynamic_partitions("targets")) == ["default", "shop_b"]
        for name in ("default", "shop_b"):
            assert runner.run_job_range(
                instance, "health_hourly_job", "2026-03-02-10:00", "2026-03-02-11:00", target=name
            ).success
        # re-running one target's hour leaves the other target's rows alone
        assert runner.run_job_range(
            instance, "health_hourly_job", "2026-03-02-10:00", "2026-03-02-10:00", target="shop_b"
        ).success
    assert uptime(conn) == [
        ("default", H10, "api", 4, 3),
        ("default", H10, "web", 2, 2),
        ("default", H11, "api", 2, 2),
        ("shop_b", H10, "web", 2, 2),
    ]
    quarantined = conn.execute(
        "SELECT target, source_id, reason FROM analytics.quarantine ORDER BY 1, 2"
    ).fetchall()
    assert [row for row in quarantined if row[0] == "shop_b"] == [("shop_b", 3, "timestamp in the future")]
    assert len([row for row in quarantined if row[0] == "default"]) == 5
    scores = conn.execute(
        "SELECT target, count(*) FROM analytics.health_score_hourly GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert scores == [("default", 3), ("shop_b", 1)]


def test_a_run_over_a_range_of_two_targets_is_refused_and_writes_nothing(shop_b, pg_url, conn):
    load(pg_url, frame())
    job = runner.load_definitions().resolve_job_def("health_hourly_job")
    tags = {RANGE_START: "default|2026-03-02-10:00", RANGE_END: "shop_b|2026-03-02-10:00"}
    with dg.DagsterInstance.ephemeral() as instance:
        runner.ensure_targets(instance)
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures
    for failure in failures:
        message = failure.step_failure_data.user_failure_data.description
        assert message == "a run covers one target at a time, this one covers default to shop_b"
    assert uptime(conn) == []


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dict]:
    """The metadata of each partition's latest materialization of ``key``."""
    records = instance.fetch_materializations(key, limit=100).records
    found: dict[str, dict] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        found[record.partition_key] = record.asset_materialization.metadata
    return found


def test_a_range_run_describes_itself_not_each_partition(shop_b, pg_url, conn):
    """Dagster copies a result's metadata onto every partition of the run: a range run's counts are named
    for the run (a row count per hour would claim the whole range); a one-partition run keeps Dagster's."""
    load(pg_url, frame())
    uptime_key = dg.AssetKey(["analytics", "uptime_hourly"])
    ingest_key = dg.AssetKey(["ingest", "health_checks"])
    with dg.DagsterInstance.ephemeral() as instance:
        assert runner.run_job_range(
            instance, "health_hourly_job", "2026-03-02-10:00", "2026-03-02-11:00", target="default"
        ).success
        ranged = _materializations(instance, uptime_key)
        ranged_ingest = _materializations(instance, ingest_key)
        assert run(instance, "default|2026-03-02-10:00").success
        single = _materializations(instance, uptime_key)["default|2026-03-02-10:00"]
    assert set(ranged) == {"default|2026-03-02-10:00", "default|2026-03-02-11:00"}
    for metadata in ranged.values():
        assert metadata["run_rows"].value == 3  # the run's rows: api and web at 10:00, api at 11:00
        assert "dagster/row_count" not in metadata and "preview" not in metadata
        assert metadata["target"].value == "default"
        assert {"run_min_uptime_pct", "run_mean_uptime_pct"} <= set(metadata)
        assert not {"min_uptime_pct", "mean_uptime_pct"} & set(metadata)
    for metadata in ranged_ingest.values():
        assert {"run_rows", "run_rows_read", "run_window_start"} <= set(metadata)
        assert "dagster/row_count" not in metadata
    assert single["dagster/row_count"].value == 2  # the hour's own rows
    assert "preview" in single and "min_uptime_pct" in single and "run_rows" not in single


def test_ai_ops_of_one_target_read_and_write_only_its_rows(shop_b, pg_url, conn):
    load(pg_url, frame())
    load(shop_b, frame().filter(pl.col("source") == "web"))
    with dg.DagsterInstance.ephemeral() as instance:
        for name in ("default", "shop_b"):
            assert runner.run_job_range(
                instance, "health_hourly_job", "2026-03-02-10:00", "2026-03-02-11:00", target=name
            ).success
        # the hour ending at 12:00, analysed for shop_b only
        assert runner.run_job(
            instance, "aiops_job", partition_key="2026-03-02-11:00", target="shop_b"
        ).success
    scored = conn.execute(
        "SELECT DISTINCT target, component FROM analytics.anomalies ORDER BY 1, 2"
    ).fetchall()
    assert scored == [("shop_b", "web")]  # web is shop_b's only component; api belongs to default
    assert conn.execute("SELECT DISTINCT target FROM analytics.insights").fetchall() == [("shop_b",)]
    # another target's findings are not written into this database's application log
    logged = conn.execute("SELECT count(*) FROM automation.health_log WHERE source = 'ai-ops'").fetchone()
    assert logged == (1,)  # the fixture's own ai-ops row only


def test_an_unreachable_target_fails_only_its_own_runs(shop_b, pg_url, conn, monkeypatch):
    load(pg_url, frame())
    monkeypatch.setenv("DOWN_URL", f"postgresql://app:pw@127.0.0.1:{free_port()}/app")  # nothing listens
    targets.add_target(conn, "down", url_env="DOWN_URL")
    with dg.instance_for_test() as instance:  # a schedule reads the targets from its instance
        runner.ensure_targets(instance)
        scheduled = datetime(2026, 3, 2, 11, 2, tzinfo=UTC)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=scheduled) as context:
            requests = health_hourly_schedule(context)
        keys = sorted(r.partition_key for r in requests)
        assert keys == ["default|2026-03-02-10:00", "down|2026-03-02-10:00", "shop_b|2026-03-02-10:00"]
        results = {key.split("|")[0]: run(instance, key) for key in keys}
    assert results["default"].success and results["shop_b"].success
    assert not results["down"].success
    failures = {e.step_key: e for e in results["down"].all_events if e.is_step_failure}
    assert set(failures) == {"ingest__health_checks", "ingest__metric_samples"}  # the steps that read it
    for failure in failures.values():
        message = failure.step_failure_data.user_failure_data.description
        assert message.startswith("target 'down' is unreachable at postgresql://app:***@127.0.0.1:")
        assert message.endswith("Connection refused")
        assert ":pw@" not in message and "\n" not in message
    assert {row[0] for row in uptime(conn)} == {"default"}  # shop_b's database is empty, down wrote nothing


def test_the_sensor_keeps_a_cursor_per_target_and_skips_one_that_is_down(shop_b, pg_url, monkeypatch):
    load(pg_url, frame())
    monkeypatch.setenv("DOWN_URL", f"postgresql://app:pw@127.0.0.1:{free_port()}/app")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        targets.add_target(conn, "down", url_env="DOWN_URL")

    def evaluate(cursor: str | None) -> dg.SensorResult:
        resources = {"postgres": PostgresResource(database_url=pg_url)}
        with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
            return health_log_sensor(context)

    first = evaluate(None)
    assert not first.run_requests
    assert json.loads(first.cursor) == {"default": 15, "shop_b": 0}  # 'down' skipped, retried next tick
    load(shop_b, frame().filter(pl.col("source") == "web"))
    second = evaluate(first.cursor)
    assert [(r.tags[runner.RANGE_START], r.tags[runner.RANGE_END]) for r in second.run_requests] == [
        ("shop_b|2026-03-02-10:00", "shop_b|2026-03-02-11:00")
    ]
    assert json.loads(second.cursor)["shop_b"] == 3


@needs_prometheus
def test_pushed_metrics_carry_the_target_label_and_group(
    shop_b, pg_url, prometheus_stack: LocalPrometheus, monkeypatch
):
    load(pg_url, frame())
    load(shop_b, frame().filter(pl.col("source") == "web"))
    with dg.DagsterInstance.ephemeral() as instance:
        for name in ("default", "shop_b"):
            assert runner.run_job_range(
                instance, "health_hourly_job", "2026-03-02-10:00", "2026-03-02-11:00", target=name
            ).success
        monkeypatch.setenv("DOWN_URL", f"postgresql://app:pw@127.0.0.1:{free_port()}/app")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            targets.add_target(conn, "down", url_env="DOWN_URL")  # its push still happens, without releases
        monkeypatch.setenv("PUSHGATEWAY_URL", prometheus_stack.pushgateway_url)
        job = runner.load_definitions().resolve_job_def("metrics_push_job")
        as_of = (H11 + timedelta(minutes=30)).isoformat()
        result = job.execute_in_process(instance=instance, tags={AS_OF_TAG: as_of}, raise_on_error=False)
    assert result.success
    meta = result.asset_materializations_for_node("metrics__prometheus_push")[0].metadata
    assert meta["targets"].value == "default, down, shop_b" and meta["unreachable_targets"].value == "down"
    text = prometheus_stack.pushed_text()
    assert 'autopilot_migrations_total{instance="",job="autopilot",target="down"} 0' in text
    assert (
        'autopilot_uptime_percentage{component="web",instance="",job="autopilot",target="shop_b"} 100' in text
    )
    assert (
        'autopilot_uptime_percentage{component="api",instance="",job="autopilot",target="default"} 100'
        in text
    )
    shop_b_series = [line for line in text.splitlines() if 'target="shop_b"' in line and "uptime" in line]
    assert not any('component="api"' in line for line in shop_b_series)  # api exists only in default
