"""Daily profiling: the table statistics snapshot and everything that reads it."""

import dagster as dg

from autopilot_pipeline.defs.profiling.jobs import profiling_job

profiling_daily_schedule = dg.ScheduleDefinition(
    name="profiling_daily_schedule",
    job=profiling_job,
    cron_schedule="20 3 * * *",  # 03:20 UTC: after the nightly rollups, in the quiet hours
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day: table statistics snapshot, the day's query statistics (query_performance over "
    "the last 24 h, pg_stat_statements since the last snapshot), slow-query analysis and recommendations.",
)
