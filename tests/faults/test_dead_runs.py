"""Dead runs must not block everything (issue 10.1), as far as it is built: the instance monitors runs and
retries safe ones, the alert evaluation keeps a lane of its own, and every failed run is told in Slack and
in the Pushgateway. Real Postgres-backed Dagster instance, a real failing run, a real local Slack receiver
and a real Pushgateway."""

from __future__ import annotations

import shutil
import urllib.request

import dagster as dg

from autopilot_pipeline import runner, settings
from autopilot_pipeline.defs.alerting.resources import SlackResource
from autopilot_pipeline.defs.metrics.resources import PushgatewayResource
from autopilot_pipeline.defs.run_failures import FAILURES_JOB, run_failure_notice
from autopilot_pipeline.defs.run_policy import LANE_TAG, MAX_RETRIES_TAG, MAX_RUNTIME_TAG
from autopilot_pipeline.postgres import urls
from autopilot_pipeline.postgres.server import ensure_database

from ..prometheus_stack import prometheus_stack_fixture  # noqa: F401 - fixture
from ..test_slack import SlackReceiver


def test_the_instance_monitors_runs_retries_safe_ones_and_keeps_a_lane_for_alerts(
    pg_server: str, tmp_path, monkeypatch
) -> None:
    """The shipped dagster.yaml, loaded as `autopilot dev` loads it (Postgres storage)."""
    ensure_database(pg_server, "dagster_faults")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(settings.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", urls.dagster_url(pg_server, "dagster_faults"))
    with dg.DagsterInstance.get() as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 0  # opt-in per job
        limits = {
            (lim["key"], lim["value"]): lim["limit"]
            for lim in instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        }
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 3
        assert limits == {
            (LANE_TAG, "background"): 2,
            (LANE_TAG, "alerting"): 1,
        }  # a slot always left for alerts

    defs = runner.load_definitions()
    tags = {
        name: defs.resolve_job_def(name).tags
        for name in (
            "alerting_job",
            "health_hourly_job",
            "daily_rollups_job",
            "aiops_job",
            "metrics_push_job",
            "profiling_job",
        )
    }
    assert tags["alerting_job"][LANE_TAG] == "alerting" and tags["alerting_job"][MAX_RETRIES_TAG] == "0"
    assert all(t[LANE_TAG] == "background" for name, t in tags.items() if name != "alerting_job")
    assert all(int(t[MAX_RUNTIME_TAG]) > 0 for t in tags.values())
    assert tags["profiling_job"][MAX_RETRIES_TAG] == "0"  # it may build indexes: no blind rerun
    assert int(tags["health_hourly_job"][MAX_RETRIES_TAG]) > 0  # idempotent window writes


def test_a_failed_run_is_told_in_slack_and_in_the_pushgateway(prometheus_stack, monkeypatch) -> None:
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")  # the run fails
    job = runner.load_definitions().resolve_job_def("alerting_job")
    receiver = SlackReceiver()
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                instance=instance, raise_on_error=False, run_config=runner.QUIET_LOGGERS
            )
            assert not result.success
            [failure] = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"]
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_notice",
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=failure,
            ).for_run_failure()
            run_failure_notice(
                context,
                slack=SlackResource(webhook_url=receiver.url, backoff_seconds=0.0),
                pushgateway=PushgatewayResource(url=prometheus_stack.pushgateway_url),
            )
        [text] = receiver.texts
        assert "Dagster run failed" in text and "alerting_job" in text and result.run_id[:8] in text
        with urllib.request.urlopen(f"{prometheus_stack.pushgateway_url}/metrics", timeout=5) as answer:
            exposition = answer.read().decode()
        [line] = [
            ln
            for ln in exposition.splitlines()
            if ln.startswith("autopilot_run_failed_timestamp_seconds{") and 'dagster_job="alerting_job"' in ln
        ]
        assert f'job="{FAILURES_JOB}"' in line and float(line.rsplit(" ", 1)[1]) > 0
    finally:
        receiver.close()
