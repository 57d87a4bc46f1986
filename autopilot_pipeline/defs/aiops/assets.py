"""AI operations: anomalies, trends, failure predictions, optimizations and insights.

Thin assets over :mod:`autopilot_pipeline.aiops.pipeline` (read the window, call the pure analytics, replace
the run's rows). Every asset is partitioned by monitored target × complete hours and works on its target's
rows at its partition's end, the analysis time ``as_of``; it shows its findings in the UI as a table and a plot. Anomalies and failure
risk run after each hour's health tables (eager); trends, optimizations and insights every six hours, as
the seed's workflow. The insights asset also posts the summary to Slack when ``SLACK_WEBHOOK_URL`` is set.
"""

import dagster as dg
import polars as pl
import psycopg

from autopilot_pipeline.aiops import pipeline, plots, store
from autopilot_pipeline.aiops.insights import slack_message
from autopilot_pipeline.aiops.risk_report import risk_name
from autopilot_pipeline.defs.aiops.jobs import ANOMALIES, INSIGHTS, OPTIMIZATIONS, PREDICTIONS, TRENDS
from autopilot_pipeline.defs.aiops.resources import AiopsResource, LLMResource
from autopilot_pipeline.defs.alerting.resources import SlackResource
from autopilot_pipeline.defs.meta import OWNERS, preview, record_frame
from autopilot_pipeline.defs.partitions import (
    SAME_TARGET_OVERLAPPING_TIME,
    TARGET,
    analysis_hours_by_target,
    analysis_time,
    run_target,
)
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.profiling.store.recommendations import optimize_system

GROUP = "aiops"
#: The same target's health hour (the health tables include the hour in progress; AI ops only complete hours).
HEALTH_TABLES = [
    dg.AssetDep(dg.AssetKey(["analytics", name]), partition_mapping=SAME_TARGET_OVERLAPPING_TIME)
    for name in ("uptime_hourly", "error_rates_hourly", "response_times_hourly", "metric_samples_hourly")
]
RECOMMENDATIONS = dg.AssetKey(["automation", "performance_recommendations"])
#: The target's latest profiling (partitioned by target only): an hour reads its target's open advice.
SAME_TARGET_ANY_TIME = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TARGET)

#: Anomalies and failure risk follow the health tables: each complete hour is analysed once its tables are.
AFTER_THE_HOUR = dg.AutomationCondition.eager()


def every_six_hours(ignore: list[dg.AssetKey] | None = None) -> dg.AutomationCondition:
    """The seed's AI-ops workflow (``0 */6 * * *``): the latest complete hour, once its inputs are in.

    ``ignore`` names inputs refreshed at another cadence (the daily profiling recommendations), which
    must not hold the 6-hourly analysis back until they happen to change.
    """
    cron = "0 */6 * * *"
    tick = dg.AutomationCondition.cron_tick_passed(cron)
    inputs_ready = dg.AutomationCondition.all_deps_match(
        dg.AutomationCondition.newly_updated().since(tick) | dg.AutomationCondition.will_be_requested()
    )
    if ignore:
        inputs_ready = inputs_ready.ignore(dg.AssetSelection.assets(*ignore))
    return (
        dg.AutomationCondition.in_latest_time_window()
        & tick.since(dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated())
        & inputs_ready
    ).with_label(f"every 6 hours ({cron}), after the hour's inputs")


def _recommendations(conn: psycopg.Connection, target: str) -> dict:
    """The target's open profiling recommendations (another target's are the copies its profiling run
    stored here)."""
    return optimize_system(conn, refresh=False, target=target)


def _table(frame: pl.DataFrame, rows: int = 25) -> dg.MetadataValue:
    """A markdown table with 4 significant digits (error ratios and scores need more than 2 decimals)."""
    shown = frame.head(rows).with_columns(
        pl.selectors.float().round_sig_figs(4).cast(pl.String),
        pl.selectors.datetime().dt.strftime("%Y-%m-%d %H:%M"),
        pl.selectors.string().str.replace_all(r"\|", "/"),
    )
    return preview(shown, rows=rows)


def _plot(markdown: str | None) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown or "_nothing to plot_")


@dg.asset(
    key=ANOMALIES,
    partitions_def=analysis_hours_by_target,
    automation_condition=AFTER_THE_HOUR,
    deps=HEALTH_TABLES,
    group_name=GROUP,
    kinds={"postgres", "polars"},
    owners=OWNERS,
    description="Causal anomaly scores of every hourly series (uptime, error ratio, p95/avg latency, custom "
    "metrics) over the last 7 days, in the seed's shape; anomalies also go to automation.health_log "
    "(source 'ai-ops', kind 'anomaly', metadata.confidence) for the seed's intelligent-alerting SQL.",
)
def anomalies(
    context: dg.AssetExecutionContext, postgres: PostgresResource, aiops: AiopsResource
) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        as_of = analysis_time(context)
        run = pipeline.run_anomalies(conn, as_of, aiops.settings, target=run_target(context))
    found = run.anomalies.sort(["confidence", "bucket_start"], descending=[True, True])
    by_severity = dict(found.group_by("severity").len().iter_rows()) if found.height else {}
    series = run.scores.select("component", "metric").unique().height if run.scores.height else 0
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "analytics.anomalies",
            "dagster/row_count": run.written,
            "as_of": as_of.isoformat(),
            "window_start": run.window_start.isoformat(),
            "series": series,
            "anomalies": found.height,
            **{f"severity_{s}": int(by_severity.get(s, 0)) for s in ("critical", "high", "medium", "low")},
            "health_log_rows": run.logged,
            "findings": _table(
                found.select(
                    "bucket_start",
                    "component",
                    "metric",
                    "severity",
                    "confidence",
                    "actual_value",
                    "expected_value",
                    "reason",
                )
            ),
            "plot": _plot(plots.anomaly_plot(run.scores)),
        }
    )


@dg.asset(
    key=TRENDS,
    partitions_def=analysis_hours_by_target,
    automation_condition=every_six_hours(),
    deps=HEALTH_TABLES,
    group_name=GROUP,
    kinds={"postgres", "statsmodels"},
    owners=OWNERS,
    description="Trend per component and metric over 24 h and 7 days: OLS slope with its 95 % interval, "
    "p-value and R² (autocorrelation-corrected), confirmed by Mann-Kendall and Theil-Sen; improving / stable "
    "/ degrading only when significant.",
)
def trends(
    context: dg.AssetExecutionContext, postgres: PostgresResource, aiops: AiopsResource
) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        as_of = analysis_time(context)
        run = pipeline.run_trends(conn, as_of, aiops.settings, target=run_target(context))
    counts = dict(run.trends.group_by("trend").len().iter_rows()) if run.trends.height else {}
    moving = run.trends.filter(pl.col("trend") != "stable").sort(["trend", "p_value"])
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "analytics.trends",
            "dagster/row_count": run.written,
            "as_of": as_of.isoformat(),
            **{t: int(counts.get(t, 0)) for t in ("degrading", "improving", "stable")},
            "findings": _table(
                moving.select(
                    "window_hours",
                    "component",
                    "metric",
                    "trend",
                    "slope_per_day",
                    "slope_ci_low",
                    "slope_ci_high",
                    "p_value",
                    "r_squared",
                    "data_points",
                )
            ),
            "plot": _plot(plots.trend_plot(run.series, run.trends)),
        }
    )


@dg.asset(
    key=PREDICTIONS,
    partitions_def=analysis_hours_by_target,
    automation_condition=AFTER_THE_HOUR,
    deps=HEALTH_TABLES,
    group_name=GROUP,
    kinds={"postgres", "statsmodels"},
    owners=OWNERS,
    description="Failure risk per component and metric 24 h ahead: forecasts with the detected seasons and "
    "80 %/95 % intervals on history cleaned of past outliers; risk = recalibrated share of simulated paths "
    "crossing the seed's critical thresholds, called a risk score unless the shipped calibration met its "
    "held-out targets (riskName; see docs/AI_OPS_GUIDE.md, 'Failure risk').",
)
def failure_predictions(
    context: dg.AssetExecutionContext, postgres: PostgresResource, aiops: AiopsResource
) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        as_of = analysis_time(context)
        run = pipeline.run_predictions(conn, as_of, aiops.settings, target=run_target(context))
    preds = run.predictions
    # A risk score until the shipped calibration met its held-out targets, then a probability: say which.
    risk_column = risk_name(preds[0]).replace(" ", "_") if preds else "risk_score"
    table = record_frame(
        preds,
        {
            "component": pl.String,
            "metric": pl.String,
            risk_column: pl.Float64,
            "prediction": pl.String,
            "last_value": pl.Float64,
            "threshold": pl.Float64,
            "expected_crossing": pl.String,
            "method": pl.String,
            "cleaned_points": pl.Int64,
        },
        {
            risk_column: "probability",
            "last_value": "lastValue",
            "expected_crossing": "expectedCrossingAt",
            "cleaned_points": "cleanedPoints",
        },
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "analytics.failure_predictions",
            "dagster/row_count": run.written,
            "as_of": as_of.isoformat(),
            "predictions": len(preds),
            "at_risk": sum(1 for p in preds if p["probability"] >= 0.5),
            f"max_{risk_column}": float(max((p["probability"] for p in preds), default=0.0)),
            "findings": _table(table),
            "plot": _plot(plots.forecast_plot(run.series, preds)),
        }
    )


@dg.asset(
    key=OPTIMIZATIONS,
    partitions_def=analysis_hours_by_target,
    automation_condition=every_six_hours(ignore=[RECOMMENDATIONS]),
    deps=[dg.AssetDep(RECOMMENDATIONS, partition_mapping=SAME_TARGET_ANY_TIME), PREDICTIONS],
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    description="The seed's optimize_system: the open performance recommendations (indexes, query "
    "optimization, maintenance, scaling) plus predictive scaling for resources forecast to run out.",
)
def optimizations(
    context: dg.AssetExecutionContext, postgres: PostgresResource, aiops: AiopsResource
) -> dg.MaterializeResult:
    target = run_target(context)
    with postgres.connect() as conn:
        as_of = analysis_time(context)
        at = store.latest_analysis(conn, "predictions", as_of, target)
        preds = store.read_predictions(conn, at, target) if at else []
        report = pipeline.run_optimizations(_recommendations(conn, target), preds, aiops.settings)
    table = record_frame(
        report["optimizations"],
        {
            "priority": pl.String,
            "type": pl.String,
            "count": pl.Int64,
            "description": pl.String,
            "action": pl.String,
            "impact": pl.String,
        },
    )
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "totalOptimizations": report["totalOptimizations"],
            "estimatedImpact": report["estimatedImpact"],
            "predictions_from": at.isoformat() if at else "none",
            "optimizations": _table(table),
            "optimize_system": dg.MetadataValue.json(report),
        }
    )


@dg.asset(
    key=INSIGHTS,
    partitions_def=analysis_hours_by_target,
    automation_condition=every_six_hours(),
    deps=[
        ANOMALIES,
        TRENDS,
        PREDICTIONS,
        OPTIMIZATIONS,
        dg.AssetDep(
            dg.AssetKey(["analytics", "health_score_hourly"]), partition_mapping=SAME_TARGET_OVERLAPPING_TIME
        ),
    ],
    group_name=GROUP,
    kinds={"postgres", "openai", "slack"},
    owners=OWNERS,
    description="The seed's generate_insights for the last 24 h (summary, health, migrations, "
    "recommendations) from the tables above, with an LLM narrative (aiAnalysis) when OPENAI_API_KEY is set; "
    "posts the summary to Slack when SLACK_WEBHOOK_URL is set.",
)
def insights(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    aiops: AiopsResource,
    llm: LLMResource,
    slack: SlackResource,
) -> dg.MaterializeResult:
    settings = aiops.settings
    target = run_target(context)
    with postgres.connect() as conn, postgres.connect_source(target) as source:
        as_of = analysis_time(context)
        start = as_of - settings.insights_hours * pipeline.HOUR
        found = store.read_anomalies(conn, start, as_of, target=target)
        trends_at = store.latest_analysis(conn, "trends", as_of, target)
        trend_rows = (
            store.read_trends(conn, trends_at, target)
            if trends_at
            else pl.DataFrame(schema=store.TREND_COLUMNS)
        )
        predictions_at = store.latest_analysis(conn, "predictions", as_of, target)
        preds = store.read_predictions(conn, predictions_at, target) if predictions_at else []
        report = pipeline.run_optimizations(_recommendations(conn, target), preds, settings)
        run = pipeline.run_insights(
            conn,
            as_of,
            settings,
            llm.settings,
            anomalies=found,
            trends=trend_rows,
            predictions=preds,
            optimizations=report,
            target=target,
            source=source,
        )
    if run.llm.status == "failed":
        context.log.warning(f"LLM narrative skipped, deterministic insights kept: {run.llm.error}")
    client = slack.client()
    if client is None:
        slack_meta: dict[str, object] = {"slack": "not configured (SLACK_WEBHOOK_URL unset)"}
    else:
        delivery = client.post(slack_message(run.insights))
        status = "delivered" if delivery.ok else "unconfirmed" if delivery.uncertain else "failed"
        slack_meta = {"slack": status, "slack_attempts": delivery.attempts}
        if delivery.error:
            slack_meta["slack_error"] = delivery.error
            context.log.warning(delivery.error)
    ins = run.insights
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "analytics.insights",
            "as_of": as_of.isoformat(),
            "health": ins["health"],
            "summary": ins["summary"],
            "anomalies": ins["anomalies"],
            "at_risk": len(ins["atRisk"]),
            "recommendations": dg.MetadataValue.md("\n".join(f"- {r}" for r in ins["recommendations"])),
            **({"ai_analysis": dg.MetadataValue.md(ins["aiAnalysis"])} if ins.get("aiAnalysis") else {}),
            "insights": dg.MetadataValue.json(ins),
            **run.llm.metadata(),
            **slack_meta,
        }
    )
