"""Push fresh metrics after every successful health or rollup run."""

import dagster as dg

from autopilot_pipeline.defs.health.jobs import daily_rollups_job, health_hourly_job
from autopilot_pipeline.defs.metrics.jobs import metrics_push_job


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[health_hourly_job, daily_rollups_job],
    request_job=metrics_push_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a successful health_hourly_job or daily_rollups_job run, push the metrics.",
)
def push_after_health_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"after:{context.dagster_run.run_id}")
