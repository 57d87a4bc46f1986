"""The AI-ops job, for explicit runs (``autopilot demo``, backfills): every AI-ops asset for one analysis hour.

Day to day nothing launches it: the assets carry their own automation conditions (``assets.py``).
"""

import dagster as dg

from autopilot_pipeline.defs.run_policy import background

ANOMALIES = dg.AssetKey(["analytics", "anomalies"])
TRENDS = dg.AssetKey(["analytics", "trends"])
PREDICTIONS = dg.AssetKey(["analytics", "failure_predictions"])
OPTIMIZATIONS = dg.AssetKey(["aiops", "optimizations"])
INSIGHTS = dg.AssetKey(["analytics", "insights"])
AIOPS_ASSETS = [ANOMALIES, TRENDS, PREDICTIONS, OPTIMIZATIONS, INSIGHTS]

aiops_job = dg.define_asset_job(
    "aiops_job",
    tags=background(1800, 2),
    selection=dg.AssetSelection.assets(*AIOPS_ASSETS),
    description="Detect anomalies, analyze trends, predict failures, assemble optimizations and insights "
    "(with the optional LLM narrative), and post the summary to Slack, for one target and analysis hour.",
)
