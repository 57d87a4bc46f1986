"""Sensor: new ``health_log`` rows (cursor = last seen id) request the hours they fall in.

Late rows for past hours are new ids too, so past partitions are re-run without any special case.
Contiguous hours become one single-run range, so a bulk load of a month is one run, not 720.

Every monitored target has its own ``health_log`` and its own id sequence: the cursor is a JSON object of
the last id seen per target (a bare number, the cursor before targets existed, is the ``default`` target's).
A target that cannot be reached is skipped with a warning and keeps its cursor.
"""

import json
from datetime import datetime, timedelta

import dagster as dg
import psycopg

from autopilot_pipeline.defs.health.jobs import health_hourly_job
from autopilot_pipeline.defs.partitions import DEFAULT_TARGET, RANGE_END, RANGE_START, hourly, target_key
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.health import store as health_store
from autopilot_pipeline.postgres import targets


def contiguous_ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """[(first, last)] runs of consecutive hours."""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if ranges and hour - ranges[-1][1] == timedelta(hours=1):
            ranges[-1] = (ranges[-1][0], hour)
        else:
            ranges.append((hour, hour))
    return ranges


def run_requests_for(
    hours: list[datetime], now: datetime, cursor: int, target: str = DEFAULT_TARGET
) -> list[dg.RunRequest]:
    keys = set(hourly.get_partition_keys(current_time=now))
    valid = [h for h in hours if h.strftime(hourly.fmt) in keys]  # drop rows dated outside the partitions
    requests = []
    for first, last in contiguous_ranges(valid):
        start, end = first.strftime(hourly.fmt), last.strftime(hourly.fmt)
        tags = {RANGE_START: target_key(target, start), RANGE_END: target_key(target, end)}
        run_key = (
            f"health_log:{cursor}:{start}"
            if target == DEFAULT_TARGET
            else f"health_log:{target}:{cursor}:{start}"
        )
        requests.append(dg.RunRequest(run_key=run_key, tags=tags))
    return requests


def read_cursor(cursor: str | None) -> dict[str, int]:
    """Last id seen per target; a bare number is the ``default`` target's (the cursor before targets)."""
    if not cursor:
        return {}
    value = json.loads(cursor)
    return {DEFAULT_TARGET: int(value)} if isinstance(value, int) else {k: int(v) for k, v in value.items()}


@dg.sensor(
    job=health_hourly_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests the hourly partitions that new or late health_log rows fall in.",
)
def health_log_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    seen = read_cursor(context.cursor)
    with postgres.connect() as conn:
        monitored = targets.list_targets(conn)
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    for target in monitored:
        try:
            with postgres.connect_source(target.name) as source:
                if target.name not in seen:
                    # First tick: start from now; history is the job of a backfill (`autopilot demo` does one).
                    seen[target.name] = health_store.latest_id(source)
                    notes.append(f"{target.name}: cursor initialised")
                    continue
                new = health_store.new_health_rows(source, seen[target.name])
        except (dg.Failure, AutopilotError, psycopg.Error) as exc:  # one target never blocks the others
            reason = getattr(exc, "description", None) or " ".join(str(exc).split())
            context.log.warning(f"skipped target {target.name}: {reason}")
            continue
        seen[target.name] = new.last_id
        if new.rows:
            now = datetime.now(tz=new.hours[0].tzinfo)
            found = run_requests_for(new.hours, now, new.last_id, target.name)
            context.log.info(
                f"{target.name}: {new.rows} new rows in {len(new.hours)} hour(s) -> {len(found)} run(s)"
            )
            requests += found
    monitored_names = {target.name for target in monitored}  # a removed target's cursor goes with it
    cursor = json.dumps({name: last for name, last in sorted(seen.items()) if name in monitored_names})
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(notes) or "no new health_log rows", cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
