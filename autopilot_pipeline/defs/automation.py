"""The automation sensor: evaluates every asset's ``automation_condition`` (AI ops after each health hour and
every six hours, the metrics push after the health tables change), so the UI shows why each asset ran."""

import dagster as dg

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Runs assets whose automation condition holds (eager after upstream, on the AI-ops cron).",
)
