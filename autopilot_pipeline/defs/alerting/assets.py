"""The alert evaluation: every enabled rule of ``automation.alert_rules`` evaluated at one moment.

Thin: the engine (``autopilot_pipeline.alerting``) does the work in one transaction; this asset passes the
evaluation time (the schedule's tick in the run's ``autopilot/as_of`` tag, or now) and reports firing and pending alerts in its metadata.
"""

import dagster as dg
import polars as pl

from autopilot_pipeline.alerting.engine import EvaluationResult, evaluate_alert_rules
from autopilot_pipeline.defs.meta import OWNERS, preview
from autopilot_pipeline.defs.partitions import run_time
from autopilot_pipeline.defs.resources import PostgresResource

alert_rules = dg.AssetSpec(
    ["automation", "alert_rules"],
    group_name="sources",
    kinds={"postgres"},
    description="Alert rules (the seed's table): metric, condition, threshold, duration, severity, Slack.",
)
SOURCES = [
    alert_rules.key,
    dg.AssetKey(["automation", "health_log"]),
    dg.AssetKey(["automation", "metric_samples"]),
    dg.AssetKey(["automation", "migration_log"]),
]


def evaluation_metadata(result: EvaluationResult) -> dict[str, object]:
    """Counts (charted over time by the UI) and markdown tables of active alerts and skipped rules."""
    # the target column only once another target than `default` has an alert
    many = result.instances.filter(pl.col("target") != "default").height > 0
    active = result.instances.select(
        "state",
        "severity",
        "rule",
        *(["target"] if many else []),
        "component",
        pl.col("value").round(3),
        "active_at",
        "fired_at",
    )
    return {
        "evaluated_at": result.evaluated_at.isoformat(),
        "firing": result.firing,
        "pending": result.pending,
        "fired": result.fired.height,
        "resolved": result.resolved.height,
        "rules_evaluated": result.rules_evaluated,
        "rules_skipped": result.skipped.height,
        "instances_evaluated": result.instances_evaluated,
        "duration_ms": round(result.duration_ms, 1),
        "active_alerts": preview(active, rows=50),
        "skipped_rules": preview(result.skipped, rows=50),
        **({"notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes))} if result.notes else {}),
    }


@dg.asset(
    key=["alerting", "alert_evaluations"],
    deps=SOURCES,
    group_name="alerting",
    kinds={"postgres", "polars"},
    owners=OWNERS,
    description="Evaluates every enabled alert rule (Prometheus semantics: pending, firing, resolved) and "
    "records state in automation.alert_state and firings in automation.alert_history.",
)
def alert_evaluations(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        result = evaluate_alert_rules(conn, run_time(context), logger=context.log)  # type: ignore[arg-type]
    if result.refused:
        context.log.warning(result.refused)
        return dg.MaterializeResult(
            metadata={"evaluated_at": result.evaluated_at.isoformat(), "refused": result.refused}
        )
    return dg.MaterializeResult(metadata=evaluation_metadata(result))
