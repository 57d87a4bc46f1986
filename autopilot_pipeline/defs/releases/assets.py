"""Release statistics per day: migrations and deployments (totals, success rates, rollbacks, durations)."""

import dagster as dg
import polars as pl

from autopilot_pipeline.defs.health.assets import write_window
from autopilot_pipeline.defs.meta import OWNERS
from autopilot_pipeline.defs.partitions import daily_by_target
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.health.releases import release_stats


@dg.asset(
    key=["analytics", "release_stats_daily"],
    ins={
        "migrations": dg.AssetIn(key=["ingest", "migrations"]),
        "deployments": dg.AssetIn(key=["ingest", "deployments"]),
    },
    partitions_def=daily_by_target,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="releases",
    kinds={"postgres", "polars"},
    owners=OWNERS,
    description="Migrations total, failed, success rate, rollbacks and duration; deployments total, failed, "
    "success rate and rollbacks — per day.",
)
def release_stats_daily(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    migrations: pl.DataFrame,
    deployments: pl.DataFrame,
) -> dg.MaterializeResult:
    frame = release_stats(migrations, deployments, "1d")
    return write_window(
        context,
        postgres,
        "analytics.release_stats_daily",
        frame,
        migrations=int(frame["migrations_total"].sum()) if frame.height else 0,
        deployments=int(frame["deployments_total"].sum()) if frame.height else 0,
    )
