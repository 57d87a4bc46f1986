"""The automation sensor: evaluates every asset's ``automation_condition`` (AI ops after each health hour and
every six hours, the metrics push after the health tables change), so the UI shows why each asset ran."""

import dagster as dg

from autopilot_pipeline.defs.run_policy import background

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags=background(1800, 2),  # AI ops and the push: idempotent window writes
    description="Runs assets whose automation condition holds (eager after upstream, on the AI-ops cron).",
)
