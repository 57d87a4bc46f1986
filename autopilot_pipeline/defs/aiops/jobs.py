"""The AI-ops jobs: the full analysis (the seed's 6-hourly workflow) and the cheap hourly refresh."""

import dagster as dg

ANOMALIES = dg.AssetKey(["analytics", "anomalies"])
TRENDS = dg.AssetKey(["analytics", "trends"])
PREDICTIONS = dg.AssetKey(["analytics", "failure_predictions"])
OPTIMIZATIONS = dg.AssetKey(["aiops", "optimizations"])
INSIGHTS = dg.AssetKey(["analytics", "insights"])
AIOPS_ASSETS = [ANOMALIES, TRENDS, PREDICTIONS, OPTIMIZATIONS, INSIGHTS]
HOURLY_ASSETS = [ANOMALIES, PREDICTIONS]

aiops_job = dg.define_asset_job(
    "aiops_job",
    selection=dg.AssetSelection.assets(*AIOPS_ASSETS),
    description="Detect anomalies, analyze trends, predict failures, assemble optimizations and insights "
    "(with the optional LLM narrative), and post the summary to Slack.",
)

aiops_hourly_job = dg.define_asset_job(
    "aiops_hourly_job",
    selection=dg.AssetSelection.assets(*HOURLY_ASSETS),
    description="Re-score anomalies and refresh failure predictions after the health tables changed "
    "(no insights, no Slack).",
)


def as_of_run_config(keys: list[dg.AssetKey], as_of: str) -> dict:
    """Run config giving every asset of ``keys`` the same analysis time."""
    return {"ops": {"__".join(key.path): {"config": {"as_of": as_of}} for key in keys}}
