"""The alerting job: one evaluation of every rule."""

import dagster as dg

from autopilot_pipeline.defs.run_policy import ALERTING

alerting_job = dg.define_asset_job(
    "alerting_job",
    tags=ALERTING,
    selection=dg.AssetSelection.assets(dg.AssetKey(["alerting", "alert_evaluations"])),
    description="Evaluate every enabled alert rule once (the schedule runs it every minute).",
)
