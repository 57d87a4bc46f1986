"""The health assets materialized for real: Dagster in process, Postgres for data."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import psycopg
import pytest

from autopilot_pipeline import runner
from autopilot_pipeline.defs.health.sensors import health_log_sensor
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.postgres.io import copy_frame

from .health_fixture import H10, H11, frame


@pytest.fixture
def pipeline_env(pg_url: str, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    return pg_url


def load_fixture(conn: psycopg.Connection) -> None:
    with conn.transaction():
        copy_frame(conn, "automation.health_log", frame().drop("id"))


def table(conn: psycopg.Connection, name: str, order: str = "bucket_start, component") -> list[tuple]:
    return conn.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall()  # test-only, fixed names


def evaluate_sensor(url: str, cursor: int | None) -> dg.SensorResult:
    resources = {"postgres": PostgresResource(database_url=url)}
    with dg.build_sensor_context(
        cursor=None if cursor is None else str(cursor), resources=resources
    ) as context:
        return health_log_sensor(context)


def run_hours(first: str, last: str) -> runner.RunSummary:
    with dg.DagsterInstance.ephemeral() as instance:
        return runner.run_job_range(instance, "health_hourly_job", first, last)


def test_hourly_tables_match_hand_computed_values(pipeline_env, conn):
    load_fixture(conn)
    assert run_hours("2026-03-02-10:00", "2026-03-02-11:00").success

    uptime = conn.execute(
        "SELECT bucket_start, component, checks, up_checks, uptime_pct, degraded_checks, degraded_ratio "
        "FROM analytics.uptime_hourly ORDER BY 1, 2"
    ).fetchall()
    assert uptime == [
        (H10, "api", 4, 3, 75.0, 1, 0.25),
        (H10, "web", 2, 2, 100.0, 0, 0.0),
        (H11, "api", 2, 2, 100.0, 0, 0.0),
    ]
    p95 = conn.execute(
        "SELECT component, p95_ms FROM analytics.response_times_hourly WHERE bucket_start = %s ORDER BY 1",
        (H10,),
    ).fetchall()
    assert p95 == [("api", pytest.approx(290.0)), ("web", pytest.approx(145.0))]
    score = conn.execute(
        "SELECT health_score FROM analytics.health_score_hourly WHERE bucket_start = %s AND component = 'api'",
        (H10,),
    ).fetchone()
    assert score[0] == pytest.approx(20.0)
    reasons = conn.execute("SELECT source_id, reason FROM analytics.quarantine ORDER BY source_id").fetchall()
    assert [r[1] for r in reasons] == [
        "negative response time",
        "unknown status",
        "duplicate",
        "null response time",
        "timestamp in the future",
    ]


def test_rematerializing_a_partition_is_idempotent(pipeline_env, conn):
    load_fixture(conn)
    assert run_hours("2026-03-02-10:00", "2026-03-02-11:00").success
    before = {t: table(conn, t) for t in ("analytics.uptime_hourly", "analytics.health_score_hourly")}
    quarantined = conn.execute("SELECT count(*) FROM analytics.quarantine").fetchone()[0]
    assert run_hours("2026-03-02-10:00", "2026-03-02-10:00").success
    assert run_hours("2026-03-02-10:00", "2026-03-02-11:00").success
    assert {t: table(conn, t) for t in before} == before
    assert conn.execute("SELECT count(*) FROM analytics.quarantine").fetchone()[0] == quarantined


def test_late_rows_for_a_past_partition_are_requested_and_picked_up(pipeline_env, conn):
    load_fixture(conn)
    assert run_hours("2026-03-02-10:00", "2026-03-02-11:00").success
    cursor = conn.execute("SELECT max(id) FROM automation.health_log").fetchone()[0]

    idle = evaluate_sensor(pipeline_env, cursor)
    assert not idle.run_requests

    late = pl.DataFrame(
        {
            "checked_at": [H10 + timedelta(minutes=55)],
            "source": ["web"],
            "kind": ["health_check"],
            "status": ["down"],
            "response_time_ms": [None],
            "inserted_at": [datetime.now(UTC)],
        },
        schema_overrides={"response_time_ms": pl.Float64},
    )
    with conn.transaction():
        copy_frame(conn, "automation.health_log", late)
    result = evaluate_sensor(pipeline_env, cursor)
    assert [r.tags[runner.RANGE_START] for r in result.run_requests] == ["default|2026-03-02-10:00"]
    assert [r.tags[runner.RANGE_END] for r in result.run_requests] == ["default|2026-03-02-10:00"]
    assert json.loads(result.cursor) == {"default": cursor + 1}

    request = result.run_requests[0]
    assert run_hours(request.tags[runner.RANGE_START], request.tags[runner.RANGE_END]).success
    web = conn.execute(
        "SELECT checks, up_checks FROM analytics.uptime_hourly WHERE bucket_start = %s AND component = 'web'",
        (H10,),
    ).fetchone()
    assert web == (3, 2)


def test_sensor_first_tick_only_sets_the_cursor(pipeline_env, conn):
    load_fixture(conn)
    result = evaluate_sensor(pipeline_env, None)
    assert not result.run_requests
    last = conn.execute("SELECT max(id) FROM automation.health_log").fetchone()[0]
    assert json.loads(result.cursor) == {"default": last}


def test_empty_window_materializes_with_a_warning_check(pipeline_env, conn):
    with dg.DagsterInstance.ephemeral() as instance:
        summary = runner.run_job_range(instance, "health_hourly_job", "2026-03-02-10:00", "2026-03-02-10:00")
        assert summary.success
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["ingest", "health_checks"]), "valid_rows"), limit=1
        )
    assert checks and checks[0].status.value in ("SUCCEEDED", "FAILED")
    assert conn.execute("SELECT count(*) FROM analytics.uptime_hourly").fetchone()[0] == 0


def test_missing_upstream_partition_fails_with_one_clear_line(pipeline_env, tmp_path):
    from autopilot_pipeline.defs.health.assets import uptime_hourly
    from autopilot_pipeline.defs.ingest.assets import health_checks
    from autopilot_pipeline.defs.resources import PartitionedFrameIOManager

    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("targets", ["default"])
        result = dg.materialize(
            [uptime_hourly, health_checks.to_source_asset()],
            partition_key="default|2026-03-02-10:00",
            instance=instance,
            resources={
                "postgres": PostgresResource(database_url=pipeline_env),
                "frames": PartitionedFrameIOManager(base_dir=str(tmp_path / "frames")),
            },
            raise_on_error=False,
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "ingest/health_checks partition default|2026-03-02-10:00 has not been materialized" in message


def test_health_pipeline_on_postgres_15(pg15_server, tmp_path, monkeypatch):
    """The same hand-computed result on Debian's PostgreSQL 15 (what Supabase runs)."""
    import uuid

    from autopilot_pipeline.postgres import migrate

    from .conftest import _create_database, _drop_database

    name = f"health15_{uuid.uuid4().hex[:8]}"
    url = _create_database(pg15_server, name)
    try:
        migrate.migrate(url)
        monkeypatch.setenv("AUTOPILOT_DATABASE_URL", url)
        monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
        with psycopg.connect(url, autocommit=True) as conn15:
            load_fixture(conn15)
            assert run_hours("2026-03-02-10:00", "2026-03-02-11:00").success
            uptime = conn15.execute(
                "SELECT bucket_start, component, checks, up_checks, uptime_pct FROM analytics.uptime_hourly ORDER BY 1, 2"
            ).fetchall()
            assert conn15.execute("SHOW server_version_num").fetchone()[0].startswith("15")
        assert uptime == [(H10, "api", 4, 3, 75.0), (H10, "web", 2, 2, 100.0), (H11, "api", 2, 2, 100.0)]
    finally:
        _drop_database(pg15_server, name)
