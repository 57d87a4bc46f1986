"""Time partitions shared by every domain.

Hourly for health data: the hourly schedule, the late-data sensor and uptime-by-hour all speak in hours,
and a run reads only one hour of ``health_log`` however long the history is. Daily for releases and
rollups, which are a handful of rows per day. ``end_offset=1`` includes the hour/day in progress, so the
sensor can refresh it as rows arrive.
"""

import dagster as dg

PARTITIONS_START = "2025-01-01"

hourly = dg.HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00", end_offset=1)
daily = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)

# Run tags that make one run cover a partition range (single-run backfills, the sensor, `autopilot demo`).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
