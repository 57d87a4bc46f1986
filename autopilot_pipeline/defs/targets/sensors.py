"""Keeps the ``targets`` dynamic partitions equal to ``automation.targets``: a target added or removed with
``autopilot targets`` (or by SQL, or by another deployment sharing the database) gets or loses its
partitions within a minute, without restarting anything."""

import dagster as dg

from autopilot_pipeline.defs.partitions import targets
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.postgres.targets import list_targets


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds and removes the 'targets' partitions to match the monitored targets table.",
)
def targets_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    with postgres.connect() as conn:
        wanted = [t.name for t in list_targets(conn)]
    present = set(context.instance.get_dynamic_partitions(targets.name))
    added = [name for name in wanted if name not in present]
    removed = sorted(present - set(wanted))
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if added:
        requests.append(targets.build_add_request(added))
    if removed:
        requests.append(targets.build_delete_request(removed))
    if not requests:
        return dg.SensorResult(skip_reason=f"{len(wanted)} target(s), all registered")
    context.log.info(f"targets added: {added or 'none'}; removed: {removed or 'none'}")
    return dg.SensorResult(dynamic_partitions_requests=requests)
