"""The Prometheus push: the seed's eleven ``autopilot_*`` metrics (plus alerts firing, the last-success time
and the AI-ops gauges) computed from the analytics tables and PUT to the Pushgateway.

With ``PUSHGATEWAY_URL`` unset the asset succeeds and says it pushed nothing; a gateway that stays down
fails this asset only, with one line, after retries. No table is written either way.

One push per monitored target, labelled and grouped by ``target``. A target whose database cannot be
reached still gets its gauges from the analytics tables; only its 24-hour release window (read from its
own ``migration_log``/``deployment_log``) is left out, with a warning.
"""

import time

import dagster as dg
from prometheus_client.exposition import generate_latest

from autopilot_pipeline.defs.meta import OWNERS
from autopilot_pipeline.defs.metrics.resources import PushgatewayResource
from autopilot_pipeline.defs.partitions import run_time
from autopilot_pipeline.defs.resources import PostgresResource
from autopilot_pipeline.integrations.pushgateway import PushError, display_url
from autopilot_pipeline.metrics.exposition import MetricsSnapshot, build_registry
from autopilot_pipeline.metrics.store import read_target_snapshot
from autopilot_pipeline.postgres import targets

UPSTREAM = [
    dg.AssetKey(["analytics", name])
    for name in (
        "uptime_hourly",
        "error_rates_hourly",
        "response_times_hourly",
        "health_score_hourly",
        "release_stats_daily",
    )
] + [dg.AssetKey(["alerting", "alert_evaluations"])]


#: Push once the health tables (or the alert state) changed and nothing upstream is still running: one push
#: per health or rollup run, as the run-status sensor it replaces did.
AFTER_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after the health tables change")


def _series(exposition: str) -> list[str]:
    return [line for line in exposition.splitlines() if line and not line.startswith("#")]


@dg.asset(
    key=["metrics", "prometheus_push"],
    deps=UPSTREAM,
    group_name="metrics",
    automation_condition=AFTER_UPSTREAM,
    kinds={"prometheus", "postgres"},
    owners=OWNERS,
    description="Pushes the autopilot_* metrics (seed names; stat=avg|p95|p99; *_total are all-time "
    "counters) to the Prometheus Pushgateway, one group per monitored target (label and grouping key "
    "`target`), each replacing its previous push; skipped when PUSHGATEWAY_URL is "
    "unset.",
)
def prometheus_push(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    pushgateway: PushgatewayResource,
) -> dg.MaterializeResult:
    as_of = run_time(context)
    snapshots: dict[str, MetricsSnapshot] = {}
    unreachable: list[str] = []
    with postgres.connect() as conn:
        listed = targets.list_targets(conn)
        for target in listed:
            snapshots[target.name], reason = read_target_snapshot(conn, as_of, target)
            if reason:
                context.log.warning(f"{reason}: its release gauges are left out of this push")
                unreachable.append(target.name)
    names = [target.name for target in listed]
    pushed_at = time.time()
    registries = {name: build_registry(snapshot, pushed_at, name) for name, snapshot in snapshots.items()}
    series = [
        line for registry in registries.values() for line in _series(generate_latest(registry).decode())
    ]
    families = sorted({line.split("{")[0].split(" ")[0] for line in series})
    metadata: dict[str, object] = {
        "as_of": as_of.isoformat(),
        "targets": ", ".join(names),
        "series": len(series),
        "metrics": dg.MetadataValue.md("\n".join(f"- `{name}`" for name in families)),
        "exposition_preview": dg.MetadataValue.md("```\n" + "\n".join(series[:60]) + "\n```"),
    }
    if unreachable:
        metadata["unreachable_targets"] = ", ".join(unreachable)
    if not pushgateway.configured:
        context.log.info("PUSHGATEWAY_URL is not set: metrics computed but not pushed")
        return dg.MaterializeResult(
            metadata={**metadata, "pushed": False, "note": "PUSHGATEWAY_URL is not set: nothing was pushed"}
        )
    attempts = 0
    try:
        for name, registry in registries.items():
            attempts += pushgateway.push(registry, target=name)
    except PushError as exc:
        raise dg.Failure(description=str(exc)) from None
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "pushed": True,
            "gateway": display_url(pushgateway.url or ""),
            "attempts": attempts,
            "job": pushgateway.job,
        }
    )
