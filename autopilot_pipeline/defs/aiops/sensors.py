"""After a successful health run, re-score anomalies and refresh the failure predictions (at most once an
hour: the run key is the hour), so ``anomaly_confidence`` and ``failure_probability`` alerts see the hour
that just completed instead of waiting up to six hours for the full analysis."""

from datetime import UTC, datetime

import dagster as dg

from autopilot_pipeline.defs.aiops.jobs import HOURLY_ASSETS, aiops_hourly_job, as_of_run_config
from autopilot_pipeline.defs.health.jobs import health_hourly_job


def hourly_request(now: datetime) -> dg.RunRequest:
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    return dg.RunRequest(run_key=f"aiops-hourly:{hour}", run_config=as_of_run_config(HOURLY_ASSETS, hour))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[health_hourly_job],
    request_job=aiops_hourly_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a successful health_hourly_job run: anomalies and failure predictions for the current "
    "hour (once per hour).",
)
def aiops_after_health_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return hourly_request(datetime.now(UTC))
