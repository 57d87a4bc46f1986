"""The metrics push for real: demo data through the pipeline, pushed to a real Pushgateway, scraped by a
real Prometheus; then every ``autopilot_*`` series and every dashboard panel's PromQL must return data.

Also: the exposition itself (names, types, labels), PUT replacing the group, basic auth, an unset
``PUSHGATEWAY_URL`` and a gateway that stays down.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import psycopg
import pytest
from prometheus_client.exposition import generate_latest

from autopilot_pipeline import runner
from autopilot_pipeline.defs.metrics.assets import prometheus_push
from autopilot_pipeline.defs.metrics.resources import PushgatewayResource
from autopilot_pipeline.defs.partitions import AS_OF_TAG
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.demo.store import load_demo_data
from autopilot_pipeline.integrations.prometheus_local import LocalPrometheus, free_port
from autopilot_pipeline.integrations.pushgateway import PushError, push
from autopilot_pipeline.metrics.dashboard import build_dashboard, panel_queries
from autopilot_pipeline.metrics.exposition import EXTRA_METRICS, SEED_METRICS, MetricsSnapshot, build_registry
from autopilot_pipeline.metrics.store import read_metrics_snapshot

from .conftest import TEMPLATE, _create_database, _drop_database
from .prometheus_stack import needs_prometheus, prometheus_stack_fixture, wait_until  # noqa: F401 - fixture

END = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday: the data is fixed, whatever today is
OP = "metrics__prometheus_push"


def _as_of(moment: datetime) -> dict[str, str]:
    return {AS_OF_TAG: moment.isoformat()}


@pytest.fixture(scope="module")
def pipeline_db(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two days of demo data for three components, the health tables of the last three hours and the
    daily rollups materialized, AI-ops findings and a failure prediction present. Read-only for the tests."""
    name = f"autopilot_push_{uuid.uuid4().hex[:12]}"
    url = _create_database(pg_server, name, template=TEMPLATE)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUTOPILOT_DATABASE_URL", url)
        env.setenv("AUTOPILOT_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        env.delenv("PUSHGATEWAY_URL", raising=False)
        _load(url)
        yield url
    _drop_database(pg_server, name)


def _load(url: str) -> None:
    load_demo_data(url, days=2, components=3, seed=11, replace=False, end=END, app_scale=0.01)
    with psycopg.connect(url, autocommit=True) as conn:
        # what the AI-ops assets write (issue 4): anomalies in health_log, predictions in their table
        conn.execute(
            "INSERT INTO automation.health_log (checked_at, source, kind, status, message, metadata) VALUES "
            "(%(t)s, 'ai-ops', 'anomaly', 'warning', 'latency spike', "
            '\'{"component": "api", "metric": "response_time_ms", "confidence": 0.91}\'), '
            "(%(t)s, 'ai-ops', 'anomaly', 'warning', 'errors', "
            '\'{"component": "web", "metric": "error_rate", "confidence": 0.6}\')',
            {"t": END - timedelta(minutes=30)},
        )
        conn.execute(
            "INSERT INTO analytics.failure_predictions VALUES (%s, 'api', 'uptime', 0.12), (%s, 'api', "
            "'uptime', 0.2)",
            (END - timedelta(hours=7), END - timedelta(hours=1)),
        )
    with dg.DagsterInstance.ephemeral() as instance:
        last = END - timedelta(hours=1)
        assert runner.run_job_range(
            instance, "health_hourly_job", runner.hour_key(last - timedelta(hours=2)), runner.hour_key(last)
        ).success
        assert runner.run_job_range(
            instance, "daily_rollups_job", runner.day_key(END - timedelta(days=2)), runner.day_key(last)
        ).success


def run_push(as_of: datetime = END) -> dg.ExecuteInProcessResult:
    job = runner.load_definitions().resolve_job_def("metrics_push_job")
    with dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(instance=instance, tags=_as_of(as_of), raise_on_error=False)


@needs_prometheus
def test_every_series_and_every_panel_has_data_in_prometheus(
    pipeline_db, prometheus_stack: LocalPrometheus, monkeypatch
):
    monkeypatch.setenv("PUSHGATEWAY_URL", prometheus_stack.pushgateway_url)
    result = run_push()
    assert result.success
    meta = result.asset_materializations_for_node(OP)[0].metadata
    assert meta["pushed"].value is True and meta["series"].value > 30

    wait_until(prometheus_stack.target_up)
    expected = set(SEED_METRICS) | set(EXTRA_METRICS)

    def names() -> set[str]:
        found = prometheus_stack.query('group by (__name__) ({__name__=~"autopilot_.+", job="autopilot"})')
        return {r["metric"]["__name__"] for r in found}

    wait_until(lambda: expected <= names())
    assert names() == expected

    components = {r["metric"]["component"] for r in prometheus_stack.query("autopilot_uptime_percentage")}
    assert components == {"api", "web", "database"}
    stats = {r["metric"]["stat"] for r in prometheus_stack.query("autopilot_response_time_ms")}
    assert stats == {"avg", "p95", "p99"}
    severities = {
        r["metric"]["severity"]: r["value"][1] for r in prometheus_stack.query("autopilot_alerts_firing")
    }
    assert set(severities) == {"info", "warning", "critical"}

    queries = panel_queries(build_dashboard(), {"target": "default", "component": ".*"})

    def empty_panels() -> list[str]:
        return [q for q in queries if not prometheus_stack.query(q)]

    # rate()/increase() need two scrapes: poll until every panel has data
    wait_until(lambda: not empty_panels() or None)
    assert empty_panels() == []

    # counters are all-time totals from the analytics tables
    with psycopg.connect(pipeline_db) as conn:
        checks = dict(
            conn.execute("SELECT component, sum(checks) FROM analytics.uptime_hourly GROUP BY 1").fetchall()
        )
    pushed = {
        r["metric"]["component"]: float(r["value"][1])
        for r in prometheus_stack.query("autopilot_health_checks_total")
    }
    assert pushed == {c: float(n) for c, n in checks.items()}


def uptime_components(exposition: str) -> set[str]:
    return set(
        re.findall(r'^autopilot_uptime_percentage\{[^}]*component="([^"]+)"', exposition, re.MULTILINE)
    )


@needs_prometheus
def test_push_replaces_the_group_so_removed_components_disappear(prometheus_stack: LocalPrometheus):
    both = pl.DataFrame({"component": ["api", "gone"], "value": [99.0, 97.0]})
    group = {"target": "default"}  # the asset's group for the default target
    push(build_registry(_snapshot(uptime=both), 0.0), prometheus_stack.pushgateway_url, grouping_key=group)
    assert uptime_components(prometheus_stack.pushed_text()) == {"api", "gone"}
    push(build_registry(_snapshot(), 0.0), prometheus_stack.pushgateway_url, grouping_key=group)
    assert uptime_components(prometheus_stack.pushed_text()) == {"api"}


def test_snapshot_values(pipeline_db):
    with psycopg.connect(pipeline_db) as conn:
        snap = read_metrics_snapshot(conn, END)
        latest = conn.execute(
            "SELECT component, uptime_pct FROM analytics.uptime_hourly WHERE bucket_start = %s ORDER BY 1",
            (END - timedelta(hours=1),),
        ).fetchall()
        migrations = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success') FROM automation.migration_log "
            "WHERE started_at > %s AND started_at <= %s",
            (END - timedelta(days=1), END),
        ).fetchone()
    assert sorted(snap.uptime.iter_rows()) == latest
    assert migrations[0] > 0
    assert snap.migrations_success_rate == pytest.approx(100.0 * migrations[1] / migrations[0])
    assert snap.alerts_firing == {"info": 0, "warning": 0, "critical": 0}
    assert sorted(snap.anomalies_total.iter_rows()) == [
        ("api", "response_time_ms", 1.0),
        ("web", "error_rate", 1.0),
    ]
    assert snap.failure_probability.rows() == [("api", "uptime", 0.2)]  # the latest prediction


def _snapshot(**changes) -> MetricsSnapshot:
    frame = pl.DataFrame({"component": ["api"], "value": [99.5]})
    values = dict(
        as_of=END,
        uptime=frame,
        health_score=frame,
        health_checks_total=frame,
        errors_total=frame,
        response_times=pl.DataFrame(
            {"component": ["api"] * 3, "stat": ["avg", "p95", "p99"], "value": [1.0, 2, 3]}
        ),
        migrations_total=4.0,
        rollbacks_total=1.0,
        deployments_total=9.0,
        migrations_success_rate=75.0,
        deployment_success_rate=None,
        migration_duration_ms=1200.0,
        alerts_firing={"info": 0, "warning": 2, "critical": 0},
    )
    return MetricsSnapshot(**{**values, **changes})


def test_exposition_names_types_and_labels():
    text = generate_latest(build_registry(_snapshot(), pushed_at=1_700_000_000.0)).decode()
    for name in (
        "autopilot_health_checks_total",
        "autopilot_errors_total",
        "autopilot_migrations_total",
        "autopilot_rollbacks_total",
        "autopilot_deployments_total",
    ):
        assert f"# TYPE {name} counter" in text
    assert "_created" not in text
    assert 'autopilot_response_time_ms{component="api",stat="p95"} 2.0' in text
    assert 'autopilot_alerts_firing{severity="warning"} 2.0' in text
    assert "autopilot_last_success_timestamp_seconds 1.7e+09" in text
    assert "autopilot_deployment_success_rate" not in text  # nothing deployed in the window: no fake value
    assert "autopilot_failure_probability" not in text  # AI-ops table absent


class _PutRecorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                recorder.requests.append((self.path, body, self.headers.get("Authorization")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[_PutRecorder]:
    r = _PutRecorder()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_push_is_a_put_of_the_job_group_with_basic_auth(recorder):
    registry = build_registry(_snapshot(), pushed_at=0.0)
    assert push(registry, recorder.url, username="pusher", password="s3cret", sleep=lambda _: None) == 1
    [(path, body, auth)] = recorder.requests
    assert path == "/metrics/job/autopilot"
    assert auth == "Basic " + base64.b64encode(b"pusher:s3cret").decode()
    assert 'autopilot_uptime_percentage{component="api"} 99.5' in body


def test_down_gateway_fails_the_asset_with_one_line(pg_url):
    url = f"http://pusher:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    waits: list[float] = []
    with pytest.raises(PushError) as raised:
        push(
            build_registry(_snapshot(), 0.0), url, attempts=3, backoff_s=0.5, timeout_s=2, sleep=waits.append
        )
    message = str(raised.value)
    assert message.startswith(
        f"push to Pushgateway http://127.0.0.1:{url.rsplit(':', 1)[1]} failed after 3 attempts"
    )
    assert "s3cret" not in message and "\n" not in message and waits == [0.5, 1.0]

    resources = {
        "postgres": PostgresResource(database_url=pg_url),
        "pushgateway": PushgatewayResource(url=url, attempts=2, backoff_seconds=0.01, timeout_seconds=2),
    }
    result = dg.materialize([prometheus_push], resources=resources, raise_on_error=False, tags=_as_of(END))
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert (
        description.startswith("push to Pushgateway http://127.0.0.1:") and "after 2 attempts" in description
    )


def test_unset_pushgateway_url_skips_with_a_note(pipeline_db):
    result = run_push()
    assert result.success
    meta = result.asset_materializations_for_node(OP)[0].metadata
    assert meta["pushed"].value is False
    assert meta["note"].value == "PUSHGATEWAY_URL is not set: nothing was pushed"


def test_the_push_follows_the_health_tables_by_automation_condition():
    """The run-status sensor is gone: the push asset's condition requests one push per upstream update."""
    defs = runner.load_definitions()
    push_key = dg.AssetKey(["metrics", "prometheus_push"])
    selection = dg.AssetSelection.assets(push_key)
    start = datetime(2026, 3, 4, 12, 1, tzinfo=UTC)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("targets", ["default", "shop_b"])
        result = dg.evaluate_automation_conditions(defs, instance, selection, evaluation_time=start)
        assert result.get_num_requested(push_key) == 0
        for table in ("uptime_hourly", "health_score_hourly"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    dg.AssetKey(["analytics", table]), partition="shop_b|2026-03-04-11:00"
                )
            )
        result = dg.evaluate_automation_conditions(
            defs, instance, selection, evaluation_time=start + timedelta(minutes=1), cursor=result.cursor
        )
        assert result.get_num_requested(push_key) == 1
        result = dg.evaluate_automation_conditions(
            defs, instance, selection, evaluation_time=start + timedelta(minutes=2), cursor=result.cursor
        )
        assert result.get_num_requested(push_key) == 0  # handled: no second push without a new update
