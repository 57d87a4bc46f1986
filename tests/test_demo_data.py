"""The demo data generator: deterministic, realistic, with known incidents and bad rows; and its loader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg
import pytest

from autopilot_pipeline.cli import main
from autopilot_pipeline.demo import store as demo_load
from autopilot_pipeline.demo.app import APP_ROWS
from autopilot_pipeline.demo.common import (
    BAD_QUERY_COUNTS,
    BAD_ROW_COUNTS,
    HISTORY_DAYS,
    INCIDENT_KINDS,
    LATE_ROWS,
    METRIC_NAMES,
    component_names,
)
from autopilot_pipeline.demo.generator import DemoData, generate
from autopilot_pipeline.demo.queries import QUERY_SHAPES
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import io

END = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday 00:00 UTC
SMALL_APP = 0.02  # keeps the demo app tables tiny in database tests


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(days=14, components=5, seed=7, end=END, app_scale=0.05)


def _checks(data: DemoData) -> pl.DataFrame:
    """Valid health checks of the regular period, outside every injected incident."""
    frame = data.health_log.filter(
        (pl.col("kind") == "health_check")
        & (pl.col("status") == "healthy")
        & (pl.col("response_time_ms") > 0)
        & (pl.col("checked_at") < data.end)
    )
    for inc in data.incidents.iter_rows(named=True):
        frame = frame.filter(
            ~(
                (pl.col("source") == inc["component"])
                & pl.col("checked_at").is_between(inc["started_at"], inc["ended_at"], closed="left")
            )
        )
    return frame


def _window(frame: pl.DataFrame, column: str, component: str, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter(
        (pl.col("source") == component) & pl.col(column).is_between(start, end, closed="left")
    )


# ------------------------------------------------------------------------------------------ pure generator


def test_same_seed_same_frames_and_other_seed_differs(data: DemoData) -> None:
    again = generate(days=14, components=5, seed=7, end=END, app_scale=0.05)
    for name, frame in data.tables().items():
        assert frame.equals(again.tables()[name]), name
    other = generate(days=14, components=5, seed=8, end=END, app_scale=0.05)
    assert not other.health_log.equals(data.health_log)
    assert not other.incidents.equals(data.incidents)


def test_frames_are_utc_and_cover_the_period(data: DemoData) -> None:
    assert data.start == END - timedelta(days=14) and data.end == END
    for frame in data.tables().values():
        for name, dtype in frame.schema.items():
            if isinstance(dtype, pl.Datetime):
                assert dtype == pl.Datetime("us", "UTC"), name
    checks = data.health_log.filter(pl.col("checked_at") < END)
    assert checks["checked_at"].min() < data.start + timedelta(minutes=2)
    assert checks["checked_at"].max() > END - timedelta(minutes=2)
    assert set(data.health_log["source"].unique()) == set(data.components)
    # 30-60 s between checks of one component
    gaps = (
        _checks(data)
        .filter(pl.col("source") == data.components[0])
        .sort("checked_at")
        .select(pl.col("checked_at").diff().dt.total_milliseconds().alias("gap"))
        .drop_nulls()
    )
    assert 30_000 <= gaps["gap"].median() <= 60_000
    assert gaps["gap"].quantile(0.05) >= 29_000


def test_component_names_are_realistic_and_unique() -> None:
    names = component_names(60)
    assert names[:4] == ("api", "web", "database", "auth")
    assert "edge-functions" in names and "api-eu" in names
    assert len(set(names)) == 60


def test_every_incident_kind_is_injected_after_the_warm_up_without_overlap(data: DemoData) -> None:
    incidents = data.incidents.sort("started_at")
    assert set(incidents["kind"]) == set(INCIDENT_KINDS)
    assert incidents["started_at"].min() >= data.start + timedelta(days=HISTORY_DAYS)
    assert incidents["ended_at"].max() <= data.end
    assert (incidents["ended_at"] > incidents["started_at"]).all()
    assert (incidents["started_at"].shift(-1).drop_nulls() >= incidents["ended_at"].head(-1)).all()
    assert incidents["component"].is_in(list(data.components)).all()
    assert incidents["description"].str.len_chars().min() > 10
    # at least one of each kind on a short run too
    short = generate(days=3, components=1, seed=1, end=END, app_scale=SMALL_APP)
    assert sorted(short.incidents["kind"]) == sorted(INCIDENT_KINDS)
    assert generate(days=2, components=3, seed=1, end=END, app_scale=SMALL_APP).incidents.height == 0


def test_incidents_leave_the_expected_marks(data: DemoData) -> None:
    checks = data.health_log.filter(pl.col("kind") == "health_check")
    errors = data.health_log.filter(pl.col("kind") == "error")
    warm_up = errors.filter(pl.col("checked_at") < data.start + timedelta(days=HISTORY_DAYS))
    background_errors_per_hour = warm_up.height / len(data.components) / (HISTORY_DAYS * 24)
    for inc in data.incidents.iter_rows(named=True):
        comp, start, end = inc["component"], inc["started_at"], inc["ended_at"]
        hours = (end - start) / timedelta(hours=1)
        during = _window(checks, "checked_at", comp, start, end)
        before = _window(checks, "checked_at", comp, start - timedelta(hours=2), start)
        baseline = before.filter(pl.col("status") == "healthy")["response_time_ms"].median()
        assert during.height > 0, inc
        if inc["kind"] == "outage":
            assert (during["status"] == "down").all()
            assert during["response_time_ms"].fill_null(10_000.0).eq(10_000.0).all()
        elif inc["kind"] == "latency_spike":
            assert during["response_time_ms"].median() > 5 * baseline
            assert (during["status"] == "degraded").mean() > 0.9
        elif inc["kind"] == "error_burst":
            burst = _window(errors, "checked_at", comp, start, end).height
            assert burst / hours > 5 * background_errors_per_hour
            assert (during["status"] == "degraded").sum() > 0
        elif inc["kind"] == "degradation":
            assert during.tail(5)["status"].eq("down").all()  # ends in a hard outage
            ramp = during.filter(pl.col("status") != "down")
            assert ramp.tail(60)["response_time_ms"].median() > 2.5 * baseline
            memory = _window(
                data.metric_samples.filter(pl.col("metric_name") == "memory_usage_pct"),
                "sampled_at",
                comp,
                start,
                end,
            )
            assert memory["value"].max() > 90
            first_hour = memory.filter(pl.col("sampled_at") < start + timedelta(hours=1))["value"].mean()
            assert first_hour < 75
        elif inc["kind"] == "bad_deploy":
            deploys = data.deployment_log.filter(pl.col("source") == comp)
            bad = deploys.filter(pl.col("finished_at") == start)
            assert bad.height == 1 and bad["status"][0] == "failed" and bad["rolled_back"][0]
            rollback = deploys.filter(pl.col("finished_at") == end)
            assert rollback.height == 1 and rollback["status"][0] == "success"
            assert bad["version"][0] in rollback["metadata"][0]
            burst = _window(errors, "checked_at", comp, start, end).height
            assert burst / hours > 3 * background_errors_per_hour
            assert during["response_time_ms"].median() > 2 * baseline


def test_latency_has_diurnal_and_weekly_seasonality(data: DemoData) -> None:
    checks = _checks(data).with_columns(
        hour=pl.col("checked_at").dt.hour(), weekend=pl.col("checked_at").dt.weekday() >= 6
    )
    for component in data.components:
        mine = checks.filter(pl.col("source") == component)
        business = mine.filter(~pl.col("weekend") & pl.col("hour").is_between(9, 16))[
            "response_time_ms"
        ].median()
        night = mine.filter(~pl.col("weekend") & pl.col("hour").is_between(0, 4))["response_time_ms"].median()
        weekend = mine.filter(pl.col("weekend") & pl.col("hour").is_between(9, 16))[
            "response_time_ms"
        ].median()
        assert business > 1.3 * night, component
        assert business > 1.15 * weekend, component
    errors = data.health_log.filter(pl.col("kind") == "error").with_columns(
        hour=pl.col("checked_at").dt.hour()
    )
    assert errors.filter(pl.col("hour").is_between(12, 17)).height > errors.filter(pl.col("hour") <= 5).height


def test_bad_and_late_rows_match_the_injected_counts(data: DemoData) -> None:
    health = data.health_log
    rt = pl.col("response_time_ms")
    found = {
        "null_response_time": health.filter(
            (pl.col("kind") == "health_check") & (pl.col("status") == "healthy") & rt.is_null()
        ).height,
        "negative_response_time": health.filter(rt < 0).height,
        "unknown_status": health.filter(
            ~pl.col("status").is_in(["healthy", "degraded", "down", "error"])
        ).height,
        "duplicate": health.height - health.unique().height,
        "future_timestamp": health.filter(pl.col("checked_at") > data.end).height,
    }
    assert found == BAD_ROW_COUNTS == data.bad_rows
    late = health.filter(pl.col("inserted_at") - pl.col("checked_at") > timedelta(hours=1))
    assert late.height == LATE_ROWS == data.late_rows
    delay = pl.col("inserted_at") - pl.col("checked_at")
    on_time = health.filter((pl.col("checked_at") <= data.end) & (delay <= timedelta(hours=1)))
    assert on_time.height == health.height - LATE_ROWS - BAD_ROW_COUNTS["future_timestamp"]
    assert (on_time["inserted_at"] - on_time["checked_at"]).max() < timedelta(seconds=10)
    assert (on_time["inserted_at"] >= on_time["checked_at"]).all()
    assert health["inserted_at"].max() <= data.end
    assert health["inserted_at"].is_sorted()  # load order = insertion order, so ids follow inserted_at


def test_metrics_and_releases_look_real(data: DemoData) -> None:
    metrics = data.metric_samples
    assert set(metrics["metric_name"].unique()) == set(METRIC_NAMES)
    per_series = metrics.group_by("source", "metric_name").len()["len"]
    assert per_series.min() > 14 * 1440 * 0.95  # one sample a minute (minus outages)
    pct = metrics.filter(pl.col("metric_name") != "db_connections")["value"]
    assert pct.min() >= 0 and pct.max() <= 100
    cpu = metrics.filter(pl.col("metric_name") == "cpu_usage_pct").with_columns(
        hour=pl.col("sampled_at").dt.hour()
    )
    assert (
        cpu.filter(pl.col("hour") == 15)["value"].mean()
        > cpu.filter(pl.col("hour") == 3)["value"].mean() + 15
    )

    migrations = data.migration_log
    per_day = migrations.group_by(pl.col("started_at").dt.date()).len()["len"]
    assert per_day.min() >= 1 and per_day.max() <= 3
    assert set(migrations["status"].unique()) <= {"success", "failed", "rolled_back"}
    assert migrations.filter(pl.col("status") == "rolled_back")["rolled_back"].all()
    failed_share = (migrations["status"] != "success").mean()
    assert 0 < failed_share < 0.4
    assert (migrations["finished_at"] > migrations["started_at"]).all()

    deploys = data.deployment_log
    assert set(deploys["status"].unique()) <= {"success", "failed", "rolled_back"}
    assert deploys.height > 14 * len(data.components) * 0.5
    assert deploys.filter(pl.col("status") == "success").height > 0.8 * deploys.height


def test_query_workload_is_slow_where_indexes_are_missing(data: DemoData) -> None:
    qp = data.query_performance
    assert set(qp["source"].unique()) == {"api", "worker", "cron"}
    assert qp["logged_at"].min() >= data.start and qp["logged_at"].max() < data.end
    signatures = {
        "customer_by_email": "FROM demo.customers WHERE email =",
        "orders_by_customer": "FROM demo.orders WHERE customer_id =",
        "events_in_range": "FROM demo.events WHERE created_at >=",
        "order_with_items": "JOIN demo.order_items i ON i.order_id = o.id",
        "recent_orders_by_status": "ORDER BY created_at DESC LIMIT",
        "events_by_customer_type": "AND event_type =",
        "new_customers": "FROM demo.customers WHERE created_at > NOW()",
        "product_by_id": "FROM demo.products WHERE id =",
        "customer_by_id": "SELECT * FROM demo.customers WHERE id =",
        "insert_event": "INSERT INTO demo.events",
    }
    assert set(signatures) == set(QUERY_SHAPES)
    for shape, needle in signatures.items():
        calls = qp.filter(pl.col("query").str.contains(needle, literal=True))
        assert calls.height > 50, shape
        assert calls["query"].n_unique() >= 3, shape  # literals vary
        median = calls["execution_time_ms"].median()
        if QUERY_SHAPES[shape]:
            assert median > 300, shape
        else:
            assert median < 10, shape
    assert qp.filter(pl.col("execution_time_ms") >= 1000).height > 0.1 * qp.height
    bad = qp.filter(pl.col("rows_returned").is_null())
    assert bad.height == sum(BAD_QUERY_COUNTS.values()) == sum(data.bad_queries.values())
    assert bad.filter(pl.col("query").str.len_bytes() > 100_000).height == BAD_QUERY_COUNTS["huge"]


def test_demo_app_tables_are_consistent(data: DemoData) -> None:
    orders, items = data.orders, data.order_items
    assert orders["customer_id"].is_in(data.customers["id"].implode()).all()
    assert items["order_id"].is_in(orders["id"].implode()).all()
    assert items["product_id"].is_in(data.products["id"].implode()).all()
    totals = items.group_by("order_id").agg(
        (pl.col("quantity") * pl.col("unit_price_cents")).sum().alias("t")
    )
    joined = orders.join(totals, left_on="id", right_on="order_id")
    assert (joined["total_cents"] == joined["t"]).all()
    assert data.customers["email"].n_unique() == data.customers.height
    assert orders.height == int(APP_ROWS["orders"] * 0.05)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="days"):
        generate(days=0, components=2, seed=1, end=END)
    with pytest.raises(ValueError, match="components"):
        generate(days=1, components=0, seed=1, end=END)
    with pytest.raises(ValueError, match="timezone"):
        generate(days=1, components=1, seed=1, end=datetime(2025, 1, 1))


# ------------------------------------------------------------------------------------------ loading


def _counts(url: str, tables: list[str]) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # noqa: S608


def test_load_round_trip(pg_url: str) -> None:
    messages: list[str] = []
    summary = demo_load.load_demo_data(
        pg_url,
        days=3,
        components=3,
        seed=11,
        replace=False,
        end=END,
        progress=messages.append,
        app_scale=SMALL_APP,
    )
    expected = generate(days=3, components=3, seed=11, end=END, app_scale=SMALL_APP)
    assert summary.rows == {name: frame.height for name, frame in expected.tables().items()}
    assert _counts(pg_url, list(summary.rows)) == summary.rows
    assert summary.bad_rows == BAD_ROW_COUNTS and summary.late_rows == LATE_ROWS
    assert {i.kind for i in summary.incidents} == set(INCIDENT_KINDS)
    assert summary.start == END - timedelta(days=3) and summary.end == END
    assert any("automation.health_log" in m for m in messages)
    with psycopg.connect(pg_url) as conn:
        # frames carry exactly the table columns (identity id aside)
        for table, frame in expected.tables().items():
            schema, name = table.split(".")
            columns = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    (schema, name),
                )
            }
            assert set(frame.columns) == columns - (
                {"id"} if table.startswith("automation") or "incidents" in table else set()
            ), table
        incidents = io.read_frame(
            conn,
            "SELECT kind, component, "
            "(extract(epoch FROM started_at) * 1000000)::bigint AS started_at, "
            "(extract(epoch FROM ended_at) * 1000000)::bigint AS ended_at, description "
            "FROM demo.incidents ORDER BY id",
            None,
            {
                "kind": pl.String,
                "component": pl.String,
                "started_at": pl.Int64,
                "ended_at": pl.Int64,
                "description": pl.String,
            },
            timestamp_columns=("started_at", "ended_at"),
        )
        assert incidents.equals(expected.incidents)
        span = conn.execute(
            "SELECT min(checked_at), max(inserted_at), count(*) FILTER (WHERE response_time_ms IS NULL AND "
            "status = 'healthy'), count(*) FILTER (WHERE status = 'unknwn') FROM automation.health_log"
        ).fetchone()
        assert span[0] >= expected.start and span[1] <= END
        assert span[2:] == (BAD_ROW_COUNTS["null_response_time"], BAD_ROW_COUNTS["unknown_status"])
        # demo app: primary keys only, so profiling has missing indexes to find
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'demo'").fetchall()
        assert all(name.endswith("_pkey") for (name,) in indexes)
        # health_log keeps its indexes after the drop-and-rebuild bulk load
        health_indexes = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'automation' AND tablename = 'health_log'"
            )
        }
        assert {"health_log_checked_at_idx", "health_log_source_kind_idx"} <= health_indexes
        # identity sequences moved past the generated ids, so the app can insert
        new_id = conn.execute(
            "INSERT INTO demo.events (customer_id, event_type, created_at) VALUES (1, 'login', now()) RETURNING id"
        ).fetchone()[0]
        assert new_id == expected.events.height + 1
        conn.rollback()


def test_replace_semantics(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = demo_load.load_demo_data(pg_url, 3, 2, seed=1, replace=False, end=END, app_scale=SMALL_APP)
    with pytest.raises(AutopilotError, match="--replace"):
        demo_load.load_demo_data(pg_url, 3, 2, seed=2, replace=False, end=END, app_scale=SMALL_APP)
    assert _counts(pg_url, list(first.rows)) == first.rows

    # a load that fails half-way loses nothing: the truncate rolls back with it
    real_copy = io.copy_frame

    def failing_copy(conn: psycopg.Connection, table: str, frame: pl.DataFrame) -> int:
        if table == "automation.metric_samples":
            raise RuntimeError("disk full")
        return real_copy(conn, table, frame)

    monkeypatch.setattr(io, "copy_frame", failing_copy)
    with pytest.raises(RuntimeError, match="disk full"):
        demo_load.load_demo_data(pg_url, 3, 2, seed=2, replace=True, end=END, app_scale=SMALL_APP)
    monkeypatch.undo()
    assert _counts(pg_url, list(first.rows)) == first.rows

    second = demo_load.load_demo_data(pg_url, 4, 3, seed=2, replace=True, end=END, app_scale=SMALL_APP)
    assert second.rows != first.rows
    assert _counts(pg_url, list(second.rows)) == second.rows
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT min(id) FROM automation.health_log").fetchone()[0] == 1
        components = {r[0] for r in conn.execute("SELECT DISTINCT component FROM demo.incidents")}
        assert components <= set(component_names(3))
        assert conn.execute("SELECT min(checked_at) FROM automation.health_log").fetchone()[0] >= second.start


def test_cli_generates_and_refuses_to_overwrite(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    args = ["generate-demo-data", "--days", "3", "--components", "2", "--seed", "5"]
    args += ["--end", "2025-03-03T00:00:00+00:00", "--app-scale", str(SMALL_APP)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "automation.health_log" in out and "injected incidents (5" in out and "bad_deploy" in out

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--replace" in err

    assert main([*args, "--replace", "--seed", "6"]) == 0
    assert "seed 6" in capsys.readouterr().out
