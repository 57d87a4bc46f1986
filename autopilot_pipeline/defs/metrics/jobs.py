"""The metrics push job (triggered after each health or rollup run, and by ``autopilot demo``)."""

import dagster as dg

metrics_push_job = dg.define_asset_job(
    "metrics_push_job",
    selection=dg.AssetSelection.assets(dg.AssetKey(["metrics", "prometheus_push"])),
    description="Push the autopilot_* metrics to the Prometheus Pushgateway.",
)
