"""Time partitions shared by every domain, and the run tag that carries an unpartitioned run's time.

Hourly for health data: the hourly schedule, the late-data sensor and uptime-by-hour all speak in hours,
and a run reads only one hour of ``health_log`` however long the history is. Daily for releases and
rollups, which are a handful of rows per day. ``end_offset=1`` includes the hour/day in progress, so the
sensor can refresh it as rows arrive.

AI ops are partitioned by *complete* hours (no offset): a partition's end is the analysis time, so the
hour in progress is never analysed and the UI shows which hour each finding describes.

Monitored databases are the dynamic partitions of ``targets`` (``autopilot targets add``); assets whose rows
come from a monitored database are partitioned by target × time, so a target's partitions run, fail and
backfill on their own. The configured database is the target ``default``.
"""

from datetime import UTC, datetime

import dagster as dg

PARTITIONS_START = "2025-01-01"

hourly = dg.HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00", end_offset=1)
daily = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)
analysis_hours = dg.HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00")

TARGET = "target"
TIME = "time"
DEFAULT_TARGET = "default"
targets = dg.DynamicPartitionsDefinition(name="targets")


def by_target(time_partitions: dg.TimeWindowPartitionsDefinition) -> dg.MultiPartitionsDefinition:
    """``time_partitions`` crossed with the monitored targets (keys ``target|time``)."""
    return dg.MultiPartitionsDefinition({TARGET: targets, TIME: time_partitions})


hourly_by_target = by_target(hourly)
daily_by_target = by_target(daily)
analysis_hours_by_target = by_target(analysis_hours)

#: Upstream of another time grain (hours → day): same target, the time windows that overlap.
SAME_TARGET_OVERLAPPING_TIME = dg.MultiPartitionMapping(
    {
        TARGET: dg.DimensionPartitionMapping(TARGET, dg.IdentityPartitionMapping()),
        TIME: dg.DimensionPartitionMapping(TIME, dg.TimeWindowPartitionMapping()),
    }
)


def target_key(target: str, time_key: str) -> str:
    """The multi-partition key of ``target`` at ``time_key``."""
    return str(dg.MultiPartitionKey({TARGET: target, TIME: time_key}))


def split_key(key: str) -> tuple[str, str]:
    """(target, time key) of a ``target|time`` key."""
    keys = getattr(key, "keys_by_dimension", None)
    if keys is not None:
        return keys[TARGET], keys[TIME]
    target, _, time_key = str(key).partition("|")
    return target, time_key


def run_target(context: dg.AssetExecutionContext) -> str:
    """The one target a per-target run covers; a range across targets is refused in one line.

    Read off the ends of the run's key range (a multi-partition range is the product of its dimensions'
    ranges): listing its keys asks Dagster's storage, once per key, whether the target partition exists."""
    key_range = context.partition_key_range
    first, last = split_key(key_range.start)[0], split_key(key_range.end)[0]
    if first != last:
        raise dg.Failure(f"a run covers one target at a time, this one covers {first} to {last}")
    return first


def covers_one_partition(context: dg.AssetExecutionContext) -> bool:
    """Whether the run is over one partition rather than a range (its key range's ends are the same)."""
    key_range = context.partition_key_range
    return key_range.start == key_range.end


def sync_targets(instance: dg.DagsterInstance, names: list[str]) -> None:
    """Make the ``targets`` partitions exactly ``names`` (the rows of ``automation.targets``)."""
    present = set(instance.get_dynamic_partitions(targets.name))
    missing = [name for name in names if name not in present]
    if missing:
        instance.add_dynamic_partitions(targets.name, missing)
    for name in sorted(present - set(names)):
        instance.delete_dynamic_partition(targets.name, name)


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
