"""Which monitored target a profiling run profiles: its partition of the dynamic ``targets`` partitions.

Profiling is partitioned by target only, not by time: pg_stat_statements is diffed against the last
snapshot and the catalog is read as it is now, so a profiling run for a past day could not be rebuilt and a
time dimension would be fiction. Per target, the UI shows each database's profiling status; the daily
schedule requests one run per target, and a target that cannot be reached fails its own partition in one
line while the others go ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg

from autopilot_pipeline.defs.partitions import DEFAULT_TARGET
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import migrate
from autopilot_pipeline.postgres.targets import validate_name


def profiling_target(context: dg.AssetExecutionContext) -> str:
    """The run's target, its partition key; a malformed name fails the run in one line."""
    if not context.has_partition_key:
        raise dg.Failure(
            description="a profiling run profiles one target: give its name as the partition key"
        )
    try:
        return validate_name(context.partition_key)
    except AutopilotError as exc:
        raise dg.Failure(description=f"profiling partition: {exc}") from None


@contextmanager
def target_database(postgres: PostgresResource, target: str) -> Iterator[psycopg.Connection]:
    """The database profiled for ``target``: the configured one for ``default``, else the target's own,
    whose ``automation`` schema must be as current as ours (profiling writes its working state there)."""
    with postgres.connect_source(target) as conn:
        if target != DEFAULT_TARGET:
            try:
                migrate.require_current(conn)
            except AutopilotError as exc:
                raise dg.Failure(description=f"target {target!r}: {exc} against it") from None
        yield conn


def publish(
    postgres: PostgresResource,
    source: psycopg.Connection,
    target: str,
    copy: Callable[[psycopg.Connection, psycopg.Connection, str], int],
) -> int | None:
    """Copy another target's results from its database into the pipeline's (nothing to do for ``default``,
    whose results are written in place). Returns the rows copied, None for ``default``."""
    if target == DEFAULT_TARGET:
        return None
    with postgres.connect() as own:
        return copy(source, own, target)
