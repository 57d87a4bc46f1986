"""Materialize profiling assets the way the daily schedule does: one run of one target's partition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from autopilot_pipeline.defs.partitions import DEFAULT_TARGET, targets


def materialize_target(
    assets: Sequence[dg.AssetsDefinition],
    resources: Mapping[str, Any],
    target: str = DEFAULT_TARGET,
    **kwargs: Any,
) -> dg.ExecuteInProcessResult:
    """``assets`` for ``target``'s partition, on an instance that knows the target (as ``targets add`` makes it)."""
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(targets.name, [target])
        return dg.materialize(assets, resources=resources, partition_key=target, instance=instance, **kwargs)
