"""Time partitions shared by every domain, and the run tag that carries an unpartitioned run's time.

Hourly for health data: the hourly schedule, the late-data sensor and uptime-by-hour all speak in hours,
and a run reads only one hour of ``health_log`` however long the history is. Daily for releases and
rollups, which are a handful of rows per day. ``end_offset=1`` includes the hour/day in progress, so the
sensor can refresh it as rows arrive.

AI ops are partitioned by *complete* hours (no offset): a partition's end is the analysis time, so the
hour in progress is never analysed and the UI shows which hour each finding describes.
"""

from datetime import UTC, datetime

import dagster as dg

PARTITIONS_START = "2025-01-01"

hourly = dg.HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00", end_offset=1)
daily = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)
analysis_hours = dg.HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00")

# Run tags that make one run cover a partition range (single-run backfills, the sensor, `autopilot demo`).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
#: The moment an unpartitioned run describes (an alert evaluation, a metrics push), as ISO-8601 with a zone;
#: schedules set it to their tick so evaluations stay in time order. Unset: now.
AS_OF_TAG = "autopilot/as_of"


def run_time(context: dg.AssetExecutionContext) -> datetime:
    """The run's ``AS_OF_TAG`` time, or now; a time without a zone is refused in one line."""
    value = context.run.tags.get(AS_OF_TAG)
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise dg.Failure(f"{AS_OF_TAG} {value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise dg.Failure(f"{AS_OF_TAG} {value!r} has no time zone (e.g. 2026-01-05T12:00:00+00:00)")
    return moment


def analysis_time(context: dg.AssetExecutionContext) -> datetime:
    """An AI-ops partition's analysis time: the end of its hour."""
    return context.partition_time_window.end
