"""Hourly refresh of the health tables and of the current day's rollups, one run per monitored target (a
target that is down fails its own run, the others go ahead)."""

from datetime import timedelta

import dagster as dg

from autopilot_pipeline.defs.health.jobs import daily_rollups_job, health_hourly_job
from autopilot_pipeline.defs.partitions import daily, hourly, target_key, targets


@dg.schedule(
    job=health_hourly_job,
    cron_schedule="2 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def health_hourly_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Two minutes past each hour: the hour that just ended, now complete, for every target."""
    hour = hourly.get_partition_key_for_timestamp(
        (context.scheduled_execution_time - timedelta(hours=1)).timestamp()
    )
    return [
        dg.RunRequest(run_key=f"{name}:{hour}", partition_key=target_key(name, hour))
        for name in context.instance.get_dynamic_partitions(targets.name)
    ]


@dg.schedule(
    job=daily_rollups_job,
    cron_schedule="10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_rollups_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Hourly, after the health run: the day of the hour just completed (yesterday's final pass at 00:10),
    for every target."""
    day = daily.get_partition_key_for_timestamp(
        (context.scheduled_execution_time - timedelta(hours=1)).timestamp()
    )
    return [
        dg.RunRequest(
            run_key=f"{name}:{day}@{context.scheduled_execution_time:%H}", partition_key=target_key(name, day)
        )
        for name in context.instance.get_dynamic_partitions(targets.name)
    ]
