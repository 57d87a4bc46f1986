"""Jobs over the health domain, one per partitioning: the hourly tables and the daily rollups."""

import dagster as dg

from autopilot_pipeline.defs.run_policy import background

HOURLY_ASSETS = [
    "ingest/health_checks",
    "ingest/metric_samples",
    "analytics/uptime_hourly",
    "analytics/error_rates_hourly",
    "analytics/response_times_hourly",
    "analytics/health_score_hourly",
    "analytics/metric_samples_hourly",
]
DAILY_ASSETS = [
    "ingest/migrations",
    "ingest/deployments",
    "analytics/release_stats_daily",
    "analytics/uptime_daily",
]

health_hourly_job = dg.define_asset_job(
    "health_hourly_job",
    tags=background(3600, 2),
    selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in HOURLY_ASSETS]),
    description="Ingest one hour (or a range) of health_log and metric_samples; rebuild those hours' tables.",
)

daily_rollups_job = dg.define_asset_job(
    "daily_rollups_job",
    tags=background(1800, 2),
    selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in DAILY_ASSETS]),
    description="Release statistics and daily uptime for one day (or a range).",
)
