"""The metrics domain's database edge: the snapshot of every ``autopilot_*`` value at one instant, read from
the analytics tables, the alert state and the release logs (the push and any scrape render it).

Reads go through COPY into polars over short windows on indexed timestamps.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.alerting.metric_catalog import Source, window_for
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.health.tables import AI_OPS_SOURCE
from autopilot_pipeline.metrics.exposition import MetricsSnapshot
from autopilot_pipeline.postgres import targets
from autopilot_pipeline.postgres.io import read_frame
from autopilot_pipeline.postgres.targets import DEFAULT as DEFAULT_TARGET

TS = pl.Datetime("us", "UTC")
_US = timedelta(microseconds=1)

GAUGE_LOOKBACK = timedelta(hours=2)  # a component silent for longer drops out of the push
RELEASE_WINDOW = timedelta(hours=24)
SEVERITIES = ("info", "warning", "critical")


def _latest_per_component(
    conn: psycopg.Connection, table: str, columns: list[str], as_of: datetime, target: str
) -> pl.DataFrame:
    schema_name, table_name = table.split(".")
    query = sql.SQL(
        "SELECT DISTINCT ON (component) component, {cols} FROM {table} "
        "WHERE target = %s AND bucket_start > %s AND bucket_start <= %s ORDER BY component, bucket_start DESC"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table=sql.Identifier(schema_name, table_name),
    )
    schema = {"component": pl.String(), **{c: pl.Float64() for c in columns}}
    return read_frame(conn, query, (target, as_of - GAUGE_LOOKBACK, as_of), schema)


def _totals(
    conn: psycopg.Connection, table: str, column: str, components: list[str], as_of: datetime, target: str
) -> pl.DataFrame:
    schema_name, table_name = table.split(".")
    query = sql.SQL(
        "SELECT component, sum({col})::float8 FROM {table} WHERE target = %s AND component = ANY(%s) "
        "AND bucket_start <= %s GROUP BY component"
    ).format(col=sql.Identifier(column), table=sql.Identifier(schema_name, table_name))
    return read_frame(
        conn, query, (target, components, as_of), {"component": pl.String(), "value": pl.Float64()}
    )


def _release_window(conn: psycopg.Connection, table: str, as_of: datetime) -> tuple[int, int, float | None]:
    """(valid releases, successful ones, mean duration ms) started in ``(as_of - 24 h, as_of]``."""
    schema_name, table_name = table.split(".")
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success'), avg(duration_ms) "
            "FROM {table} WHERE started_at > %s AND started_at <= %s "
            "AND status IN ('success', 'failed', 'rolled_back') AND coalesce(duration_ms, 0) >= 0"
        ).format(table=sql.Identifier(schema_name, table_name)),
        (as_of - RELEASE_WINDOW, as_of),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])


def _latest_predictions(conn: psycopg.Connection, as_of: datetime, target: str) -> pl.DataFrame | None:
    """The latest failure probability per component and metric predicted in the catalog's window up to
    ``as_of``; None before the AI-ops tables exist."""
    if conn.execute("SELECT to_regclass('analytics.failure_predictions')").fetchone()[0] is None:
        return None
    start = as_of - window_for(Source.PREDICTIONS)
    return read_frame(
        conn,
        "SELECT DISTINCT ON (component, metric) component, metric, probability FROM analytics.failure_predictions "
        "WHERE target = %s AND predicted_at > %s AND predicted_at <= %s "
        "ORDER BY component, metric, predicted_at DESC",
        (target, start, as_of),
        {"component": pl.String(), "metric": pl.String(), "value": pl.Float64()},
    )


def read_metrics_snapshot(
    conn: psycopg.Connection,
    as_of: datetime,
    target: str = DEFAULT_TARGET,
    source: psycopg.Connection | None = None,
) -> MetricsSnapshot:
    """Everything the push exposes for ``target``, as of ``as_of`` (see docs/ALERTING_RULES.md, "Metric
    names").

    Gauges per component come from each component's latest hourly bucket in the last two hours; counters
    are all-time sums of the analytics tables for those components; release rates and the migration
    duration cover the last 24 hours of the release logs, read from ``source`` (the target's own database;
    this one for ``default``; None for another target: not exposed). The alert engine and the AI-ops
    findings written back to ``health_log`` are the ``default`` target's.
    """
    uptime = _latest_per_component(
        conn, "analytics.uptime_hourly", ["uptime_pct", "degraded_ratio"], as_of, target
    )
    score = _latest_per_component(conn, "analytics.health_score_hourly", ["health_score"], as_of, target)
    rt = _latest_per_component(
        conn, "analytics.response_times_hourly", ["avg_ms", "p95_ms", "p99_ms"], as_of, target
    )
    components = sorted(set(uptime["component"]) | set(score["component"]) | set(rt["component"]))
    totals = conn.execute(
        "SELECT coalesce(sum(migrations_total), 0), coalesce(sum(rollbacks_total), 0), "
        "coalesce(sum(deployments_total), 0) FROM analytics.release_stats_daily "
        "WHERE target = %s AND bucket_start <= %s",
        (target, as_of),
    ).fetchone()
    assert totals is not None
    own = target == DEFAULT_TARGET
    source = conn if own and source is None else source
    migrations, migrations_ok, duration = (
        _release_window(source, "automation.migration_log", as_of) if source else (0, 0, None)
    )
    deployments, deployments_ok, _ = (
        _release_window(source, "automation.deployment_log", as_of) if source else (0, 0, None)
    )
    firing: dict[str, int] = {}
    anomalies = None
    # the alert engine evaluates every target: each target's push carries its own firing alerts
    firing = dict(
        conn.execute(
            "SELECT r.severity, count(*) FROM automation.alert_state s "
            "JOIN automation.alert_rules r ON r.id = s.rule_id WHERE s.state = 'firing' AND r.enabled "
            "AND s.target = %s GROUP BY 1",
            (target,),
        ).fetchall()
    )
    if own:
        anomalies = read_frame(
            conn,
            "SELECT metadata->>'component', coalesce(metadata->>'metric', 'unknown'), count(*)::float8 "
            "FROM automation.health_log WHERE source = %s AND kind = 'anomaly' AND checked_at <= %s "
            "AND metadata ? 'component' GROUP BY 1, 2",
            (AI_OPS_SOURCE, as_of),
            {"component": pl.String(), "metric": pl.String(), "value": pl.Float64()},
        ).sort("component", "metric")
    predictions = _latest_predictions(conn, as_of, target)
    return MetricsSnapshot(
        as_of=as_of,
        uptime=uptime.select("component", pl.col("uptime_pct").alias("value")),
        degraded=uptime.select("component", (100.0 * pl.col("degraded_ratio")).alias("value")).drop_nulls(),
        health_score=score.rename({"health_score": "value"}),
        response_times=rt.unpivot(index="component", variable_name="stat", value_name="value")
        .with_columns(pl.col("stat").str.replace("_ms", ""))
        .drop_nulls("value"),
        health_checks_total=_totals(conn, "analytics.uptime_hourly", "checks", components, as_of, target),
        errors_total=_totals(conn, "analytics.error_rates_hourly", "errors", components, as_of, target),
        migrations_total=float(totals[0]),
        rollbacks_total=float(totals[1]),
        deployments_total=float(totals[2]),
        migrations_success_rate=100.0 * migrations_ok / migrations if migrations else None,
        deployment_success_rate=100.0 * deployments_ok / deployments if deployments else None,
        migration_duration_ms=duration,
        alerts_firing={severity: int(firing.get(severity, 0)) for severity in SEVERITIES},
        anomalies_total=anomalies,
        failure_probability=predictions,
    )


def read_target_snapshot(
    conn: psycopg.Connection, as_of: datetime, target: targets.Target
) -> tuple[MetricsSnapshot, str | None]:
    """:func:`read_metrics_snapshot` of ``target``, reading another target's release logs in its own database;
    while that cannot be read, the snapshot without them and the one-line reason (one unreachable target
    never blocks the metrics of the others)."""
    if target.name == DEFAULT_TARGET:
        return read_metrics_snapshot(conn, as_of), None
    try:
        with targets.connect_target(target) as source:
            return read_metrics_snapshot(conn, as_of, target.name, source), None
    except AutopilotError as exc:
        reason = str(exc)
    except psycopg.Error as exc:
        reason = f"target {target.name!r}: {' '.join(str(exc).split())}"
    return read_metrics_snapshot(conn, as_of, target.name, None), reason
