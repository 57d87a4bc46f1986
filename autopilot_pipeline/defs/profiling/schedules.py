"""Daily profiling: the table statistics snapshot and everything that reads it, one run per monitored target
(its partition; a target that is down fails its own run, the others go ahead)."""

import dagster as dg

from autopilot_pipeline.defs.partitions import targets
from autopilot_pipeline.defs.profiling.jobs import profiling_job


@dg.schedule(
    name="profiling_daily_schedule",
    job=profiling_job,
    cron_schedule="20 3 * * *",  # 03:20 UTC: after the nightly rollups, in the quiet hours
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day, for every target: table statistics snapshot, the day's query statistics "
    "(query_performance over the last 24 h, pg_stat_statements since the last snapshot), slow-query "
    "analysis and recommendations.",
)
def profiling_daily_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    day = f"{context.scheduled_execution_time:%Y-%m-%d}"
    return [
        dg.RunRequest(run_key=f"{name}:{day}", partition_key=name)
        for name in context.instance.get_dynamic_partitions(targets.name)
    ]
