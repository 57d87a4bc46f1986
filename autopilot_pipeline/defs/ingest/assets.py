"""Ingestion: read one time window of each ``automation`` source table in bulk, validate it, quarantine
bad rows with a reason, and hand the clean frame to the analytics assets.

Partitions are target × time: a run reads its target's database (the configured one for ``default``) and
writes the quarantine here, under the target's name; an unreachable target fails only its own run."""

from collections.abc import Callable, Iterator
from datetime import datetime

import dagster as dg
import polars as pl
import psycopg

from autopilot_pipeline.defs.health.resources import HealthResource
from autopilot_pipeline.defs.meta import OWNERS, for_partitions, preview
from autopilot_pipeline.defs.partitions import (
    covers_one_partition,
    daily_by_target,
    hourly_by_target,
    run_target,
)
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.health import samples as metrics
from autopilot_pipeline.health import store as sources
from autopilot_pipeline.health import tables as health
from autopilot_pipeline.health.releases import validate_releases
from autopilot_pipeline.health.settings import HealthSettings

GROUP = "ingest"
KINDS = {"postgres", "polars"}

health_log = dg.AssetSpec(
    ["automation", "health_log"],
    group_name="sources",
    kinds={"postgres"},
    description="Health checks and events written by the monitored application (the seed's table).",
)
metric_samples_source = dg.AssetSpec(
    ["automation", "metric_samples"],
    group_name="sources",
    kinds={"postgres"},
    description="Custom gauges such as memory_usage_pct, written by the application.",
)
migration_log = dg.AssetSpec(
    ["automation", "migration_log"],
    group_name="sources",
    kinds={"postgres"},
    description="Database migrations: duration, success or failure, rollbacks.",
)
deployment_log = dg.AssetSpec(
    ["automation", "deployment_log"],
    group_name="sources",
    kinds={"postgres"},
    description="Deployments per component: success, failure, rollbacks.",
)


def _quality_check(
    asset_key: dg.AssetKey, counts: dict[str, int], total: int, quarantined: pl.DataFrame
) -> dg.AssetCheckResult:
    bad = sum(v for k, v in counts.items() if k != "late")
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="valid_rows",
        passed=bad == 0 and total > 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "no rows in this window (is the application writing?)"
            if total == 0
            else f"{bad} of {total} rows quarantined"
            if bad
            else f"all {total} rows valid"
        ),
        metadata={
            "rows_read": total,
            "rows_quarantined": bad,
            **{f"bad_{k.replace(' ', '_')}": v for k, v in sorted(counts.items())},
            "quarantined_preview": preview(
                quarantined.select("reason", *[c for c in quarantined.columns if c != "reason"])
            ),
        },
    )


def _ingest(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    read: Callable[[psycopg.Connection, datetime, datetime], pl.DataFrame],
    validate: Callable[[pl.DataFrame, HealthSettings], tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]],
    settings: HealthSettings,
    source_table: str,
    time_column: str,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    window = context.partition_time_window
    target = run_target(context)
    with postgres.connect_source(target) as source:
        raw = read(source, window.start, window.end)
    clean, bad, counts = validate(raw, settings)
    with postgres.connect() as conn, conn.transaction():
        sources.write_quarantine(conn, source_table, time_column, bad, window.start, window.end, target)
    if bad.height:
        reasons = ", ".join(f"{n} {reason}" for reason, n in counts.items() if n and reason != "late")
        context.log.warning(f"{source_table}: quarantined {bad.height} of {raw.height} rows ({reasons})")
    metadata = {
        "dagster/row_count": clean.height,
        "rows_read": raw.height,
        "rows_quarantined": bad.height,
        "target": target,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
    }
    yield dg.Output(clean, metadata=for_partitions(metadata, covers_one_partition(context)))
    yield _quality_check(context.asset_key, counts, raw.height, bad)


def ingest_asset(
    name: str,
    source: dg.AssetSpec,
    partitions_def: dg.MultiPartitionsDefinition,
    time_column: str,
    read: Callable[[psycopg.Connection, datetime, datetime], pl.DataFrame],
    validate: Callable[[pl.DataFrame, HealthSettings], tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]],
    description: str,
) -> dg.AssetsDefinition:
    """One ingestion asset: read ``source``'s window in bulk, validate, quarantine, hand the frame on."""
    key = dg.AssetKey(["ingest", name])
    source_table = source.key.to_user_string().replace("/", ".")

    @dg.asset(
        key=key,
        deps=[source],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="frames",
        metadata={"partition_expr": time_column},
        check_specs=[
            dg.AssetCheckSpec(
                "valid_rows",
                asset=key,
                description=f"Counts {source_table} rows quarantined with a reason (null, negative, non-finite "
                "or implausibly large values, unknown kinds and statuses, duplicates, timestamps later than "
                "their insert time) and late rows.",
            )
        ],
        group_name=GROUP,
        kinds=KINDS,
        owners=OWNERS,
        description=f"{description} Bad rows go to analytics.quarantine with their reason.",
    )
    def _asset(
        context: dg.AssetExecutionContext, postgres: PostgresResource, health: HealthResource
    ) -> Iterator:
        yield from _ingest(context, postgres, read, validate, health.settings, source_table, time_column)

    return _asset


def _validate_health(
    raw: pl.DataFrame, settings: HealthSettings
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    return health.validate_health(raw, settings.max_response_ms)


def _ignoring_settings(
    validate: Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]],
) -> Callable[[pl.DataFrame, HealthSettings], tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]]:
    """A validation that has no setting (samples, releases), in the shape the ingestion asset calls."""
    return lambda raw, _settings: validate(raw)


health_checks = ingest_asset(
    "health_checks",
    health_log,
    hourly_by_target,
    "checked_at",
    sources.read_health_window,
    _validate_health,
    "Validated health checks and error events of one hour.",
)
metric_samples = ingest_asset(
    "metric_samples",
    metric_samples_source,
    hourly_by_target,
    "sampled_at",
    sources.read_samples_window,
    _ignoring_settings(metrics.validate_samples),
    "Validated custom metric samples (memory_usage_pct, ...) of one hour.",
)
migrations = ingest_asset(
    "migrations",
    migration_log,
    daily_by_target,
    "started_at",
    sources.read_migrations_window,
    _ignoring_settings(validate_releases),
    "Validated migrations of one day.",
)
deployments = ingest_asset(
    "deployments",
    deployment_log,
    daily_by_target,
    "started_at",
    sources.read_deployments_window,
    _ignoring_settings(validate_releases),
    "Validated deployments of one day.",
)
