"""Sensor: new ``health_log`` rows (cursor = last seen id) request the hours they fall in.

Late rows for past hours are new ids too, so past partitions are re-run without any special case.
Contiguous hours become one single-run range, so a bulk load of a month is one run, not 720.
"""

from datetime import datetime, timedelta

import dagster as dg

from autopilot_pipeline.defs.health.jobs import health_hourly_job
from autopilot_pipeline.defs.partitions import RANGE_END, RANGE_START, hourly
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.health import store as health_store


def contiguous_ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """[(first, last)] runs of consecutive hours."""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if ranges and hour - ranges[-1][1] == timedelta(hours=1):
            ranges[-1] = (ranges[-1][0], hour)
        else:
            ranges.append((hour, hour))
    return ranges


def run_requests_for(hours: list[datetime], now: datetime, cursor: int) -> list[dg.RunRequest]:
    keys = set(hourly.get_partition_keys(current_time=now))
    valid = [h for h in hours if h.strftime(hourly.fmt) in keys]  # drop rows dated outside the partitions
    requests = []
    for first, last in contiguous_ranges(valid):
        start, end = first.strftime(hourly.fmt), last.strftime(hourly.fmt)
        tags = {RANGE_START: start, RANGE_END: end}
        requests.append(dg.RunRequest(run_key=f"health_log:{cursor}:{start}", tags=tags))
    return requests


@dg.sensor(
    job=health_hourly_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests the hourly partitions that new or late health_log rows fall in.",
)
def health_log_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    with postgres.connect() as conn:
        if context.cursor is None:
            # First tick: start from now; history is the job of a backfill (`autopilot demo` does one).
            return dg.SensorResult(skip_reason="cursor initialised", cursor=str(health_store.latest_id(conn)))
        new = health_store.new_health_rows(conn, int(context.cursor))
    if not new.rows:
        return dg.SensorResult(skip_reason="no new health_log rows", cursor=str(new.last_id))
    now = datetime.now(tz=new.hours[0].tzinfo)
    requests = run_requests_for(new.hours, now, new.last_id)
    context.log.info(f"{new.rows} new rows in {len(new.hours)} hour(s) -> {len(requests)} run(s)")
    return dg.SensorResult(run_requests=requests, cursor=str(new.last_id))
