"""The profiling job: table statistics, query statistics, slow-query analysis, recommendations, remediation."""

import dagster as dg

from autopilot_pipeline.defs.run_policy import background

PROFILING_ASSETS = [
    "automation/table_statistics",
    "automation/query_stats",
    "automation/slow_queries",
    "automation/performance_recommendations",
    "automation/remediation_audit",
]

profiling_job = dg.define_asset_job(
    "profiling_job",
    tags=background(3600, 0),
    selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in PROFILING_ASSETS]),
    description="Snapshot table health and query statistics, analyze slow queries with the planner, refresh "
    "the recommendations, and (dry-run unless enabled) apply verified high-priority indexes.",
)
