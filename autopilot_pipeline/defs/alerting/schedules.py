"""Every minute: evaluate the alert rules at the tick's time (so evaluations stay in time order)."""

import dagster as dg

from autopilot_pipeline.defs.alerting.jobs import alerting_job
from autopilot_pipeline.defs.partitions import AS_OF_TAG


@dg.schedule(
    job=alerting_job,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def alerting_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time.isoformat()
    return dg.RunRequest(run_key=tick, tags={AS_OF_TAG: tick})
