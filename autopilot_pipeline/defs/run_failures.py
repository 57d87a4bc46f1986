"""Every failed run is told: a Slack notice and a pushed failure metric, so a pipeline that stopped working
is seen in Slack and in Grafana (``autopilot_run_failed_timestamp_seconds``), not only in the Dagster UI."""

from __future__ import annotations

import time

import dagster as dg
from prometheus_client import CollectorRegistry, Gauge

from autopilot_pipeline.defs.alerting.resources import SlackResource
from autopilot_pipeline.defs.metrics.resources import PushgatewayResource
from autopilot_pipeline.integrations.pushgateway import PushError, push
from autopilot_pipeline.slack_text import escape

FAILURES_JOB = "autopilot_runs"  # its own Pushgateway group: the metrics push replaces "autopilot" whole
_MAX_REASON = 300


def failure_notice(job_name: str, run_id: str, reason: str) -> dict[str, str]:
    """The Slack message: which job, which run, why (one line, escaped, bounded)."""
    line = " ".join(reason.split())
    line = line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"
    return {
        "text": f"🚨 *Dagster run failed*: `{escape(job_name)}` run `{run_id[:8]}`: {escape(line)} "
        "(see autopilot dev → Runs)"
    }


def failure_registry(job_name: str, at: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    gauge = Gauge(
        "autopilot_run_failed_timestamp_seconds",
        "Unix time of the last failed Dagster run of each job",
        ["dagster_job"],
        registry=registry,
    )
    gauge.labels(dagster_job=job_name).set(at)
    return registry


def first_failure(context: dg.RunFailureSensorContext) -> bool:
    """Whether this is the run's first failure event. A run ended by run monitoring (over its max runtime)
    fails twice: the monitor's failure, then the interrupted worker's own; one notice is enough."""
    events = context.instance.all_logs(context.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    first = events[0].dagster_event if events else None
    return first is None or first.message == context.failure_event.message


@dg.run_failure_sensor(
    name="run_failure_notice",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts a Slack notice and pushes autopilot_run_failed_timestamp_seconds for every failed run.",
)
def run_failure_notice(
    context: dg.RunFailureSensorContext, slack: SlackResource, pushgateway: PushgatewayResource
) -> None:
    run = context.dagster_run
    if not first_failure(context):
        return
    reason = context.failure_event.message or "failed"
    client = slack.client()
    if client is not None:
        delivery = client.post(failure_notice(run.job_name, run.run_id, reason))
        if not delivery.ok:
            context.log.warning(f"run failure notice not delivered: {delivery.error}")
    if pushgateway.configured and pushgateway.url:
        try:
            push(
                failure_registry(run.job_name, time.time()),
                pushgateway.url,
                FAILURES_JOB,
                pushgateway.username,
                pushgateway.password,
                pushgateway.timeout_seconds,
                pushgateway.attempts,
                pushgateway.backoff_seconds,
            )
        except PushError as exc:
            context.log.warning(str(exc))
