"""Every 6 hours (the seed's AI-ops workflow, ``0 */6 * * *``): the full analysis at the tick's hour."""

import dagster as dg

from autopilot_pipeline.defs.aiops.jobs import AIOPS_ASSETS, aiops_job, as_of_run_config


@dg.schedule(
    job=aiops_job,
    cron_schedule="0 */6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def aiops_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time.isoformat()
    return dg.RunRequest(run_key=tick, run_config=as_of_run_config(AIOPS_ASSETS, tick))
