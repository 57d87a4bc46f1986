"""The metrics push job (triggered after each health or rollup run, and by ``autopilot demo``)."""

import dagster as dg

from autopilot_pipeline.defs.run_policy import background

metrics_push_job = dg.define_asset_job(
    "metrics_push_job",
    tags=background(300, 2),
    selection=dg.AssetSelection.assets(dg.AssetKey(["metrics", "prometheus_push"])),
    description="Push the autopilot_* metrics to the Prometheus Pushgateway.",
)
