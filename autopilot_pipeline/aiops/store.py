"""The AI-ops database edge: hourly series from the analytics tables in, analysis results out.

Reads are COPY -> polars over one window on ``bucket_start`` (indexed by every table's primary key). Every
write replaces exactly one window or one analysis time in a single transaction, so re-running an analysis
is idempotent and a failed write leaves the previous rows in place. Values are only ever bound as
parameters; table and column names come from the fixed mapping below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from autopilot_pipeline.aiops.detection import SCORE_SCHEMA
from autopilot_pipeline.aiops.insights import json_safe
from autopilot_pipeline.health.tables import AI_OPS_SOURCE
from autopilot_pipeline.postgres.io import copy_frame, epoch_us, read_frame, serialize_writes
from autopilot_pipeline.postgres.targets import DEFAULT as DEFAULT_TARGET

__all__ = [
    "BUILTIN_SERIES",
    "SERIES_SCHEMA",
    "cache_get",
    "cache_put",
    "data_end",
    "health_facts",
    "latest_analyses",
    "latest_analysis",
    "read_anomalies",
    "read_counts",
    "read_incidents",
    "read_insights",
    "read_predictions",
    "read_series",
    "read_trends",
    "release_facts",
    "write_insights",
    "write_predictions",
    "write_scores",
    "write_trends",
]

TS = pl.Datetime("us", "UTC")
HOUR = timedelta(hours=1)

#: metric name -> (table, column) of the built-in hourly series; custom metrics come from
#: ``analytics.metric_samples_hourly`` (``avg_value`` per ``metric_name``).
BUILTIN_SERIES: dict[str, tuple[str, str]] = {
    "uptime_pct": ("analytics.uptime_hourly", "uptime_pct"),
    "degraded_ratio": ("analytics.uptime_hourly", "degraded_ratio"),
    "error_ratio": ("analytics.error_rates_hourly", "error_ratio"),
    "p95_ms": ("analytics.response_times_hourly", "p95_ms"),
    "avg_ms": ("analytics.response_times_hourly", "avg_ms"),
}
CUSTOM_SERIES = ("analytics.metric_samples_hourly", "metric_name", "avg_value")
SOURCE_TABLES = (
    "analytics.uptime_hourly",
    "analytics.error_rates_hourly",
    "analytics.response_times_hourly",
    "analytics.metric_samples_hourly",
)

SERIES_SCHEMA: dict[str, pl.DataType] = {
    "component": pl.String(),
    "metric": pl.String(),
    "bucket_start": TS,
    "value": pl.Float64(),
}


def _table(name: str) -> sql.Identifier:
    schema, table = name.split(".", 1)
    return sql.Identifier(schema, table)


#: One monitored target's rows of a time window (every analytics row carries its target, migration 0014).
_WINDOW = sql.SQL("target = %(target)s AND bucket_start >= %(start)s AND bucket_start < %(end)s")


# ------------------------------------------------------------------------------------------------- reads


def read_series(
    conn: psycopg.Connection, start: datetime, end: datetime, target: str = DEFAULT_TARGET
) -> pl.DataFrame:
    """Long hourly series ``component, metric, bucket_start, value`` of ``[start, end)``: uptime %, degraded
    share, error ratio, p95 and average response time, and the hourly average of every custom metric."""
    ts = epoch_us("bucket_start")
    parts = [
        sql.SQL(
            "SELECT component, {metric}::text, {ts}, {col}::float8 FROM {table} WHERE {window} AND {col} IS NOT NULL"
        ).format(
            metric=sql.Literal(metric), ts=ts, col=sql.Identifier(col), table=_table(table), window=_WINDOW
        )
        for metric, (table, col) in BUILTIN_SERIES.items()
    ]
    table, name_col, value_col = CUSTOM_SERIES
    parts.append(
        sql.SQL(
            "SELECT component, {name}, {ts}, {col}::float8 FROM {table} WHERE {window} AND {col} IS NOT NULL"
        ).format(
            name=sql.Identifier(name_col),
            ts=ts,
            col=sql.Identifier(value_col),
            table=_table(table),
            window=_WINDOW,
        )
    )
    frame = read_frame(
        conn,
        sql.SQL(" UNION ALL ").join(parts),
        {"start": start, "end": end, "target": target},
        SERIES_SCHEMA,
        ("bucket_start",),
    )
    return frame.sort("component", "metric", "bucket_start")


def read_counts(
    conn: psycopg.Connection, start: datetime, end: datetime, target: str = DEFAULT_TARGET
) -> pl.DataFrame:
    """The counts behind the proportions (``aiops.detection.COUNTS_SCHEMA``): error_ratio -> events and
    errors, uptime_pct -> checks and failed checks, degraded_ratio -> checks and degraded checks, per
    component and hour (for the significance gate)."""
    query = sql.SQL(
        "SELECT component, 'error_ratio', {ts}, events, errors FROM analytics.error_rates_hourly WHERE {window} "
        "UNION ALL SELECT component, 'uptime_pct', {ts}, checks, checks - up_checks FROM analytics.uptime_hourly "
        "WHERE {window} "
        "UNION ALL SELECT component, 'degraded_ratio', {ts}, checks, degraded_checks FROM analytics.uptime_hourly "
        "WHERE {window} AND degraded_checks IS NOT NULL"
    ).format(ts=epoch_us("bucket_start"), window=_WINDOW)
    schema = {
        "component": pl.String(),
        "metric": pl.String(),
        "bucket_start": TS,
        "trials": pl.Int64(),
        "failures": pl.Int64(),
    }
    return read_frame(conn, query, {"start": start, "end": end, "target": target}, schema, ("bucket_start",))


def data_end(conn: psycopg.Connection, target: str = DEFAULT_TARGET) -> datetime | None:
    """The end of ``target``'s latest hourly bucket in any source table (None: no data yet)."""
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT max(bucket_start) FROM {} WHERE target = %(target)s").format(_table(t))
        for t in SOURCE_TABLES
    )
    row = conn.execute(
        sql.SQL("SELECT max(m) FROM ({}) AS t(m)").format(query), {"target": target}
    ).fetchone()
    return row[0] + HOUR if row and row[0] is not None else None


def read_incidents(conn: psycopg.Connection) -> pl.DataFrame:
    """The demo's ground truth ``kind, component, started_at, ended_at`` (empty outside the demo)."""
    query = sql.SQL("SELECT kind, component, {s}, {e} FROM demo.incidents ORDER BY started_at").format(
        s=epoch_us("started_at"), e=epoch_us("ended_at")
    )
    schema = {"kind": pl.String(), "component": pl.String(), "started_at": TS, "ended_at": TS}
    return read_frame(conn, query, None, schema, ("started_at", "ended_at"))


_HEALTH_FACTS = """
WITH up AS (
    SELECT component, sum(checks) AS checks, sum(up_checks) AS up_checks
    FROM analytics.uptime_hourly WHERE {window} GROUP BY component
), err AS (
    SELECT component, sum(events) AS events, sum(errors) AS errors
    FROM analytics.error_rates_hourly WHERE {window} GROUP BY component
), rt AS (
    SELECT component, percentile_cont(0.5) WITHIN GROUP (ORDER BY p95_ms) AS p95_ms, max(p95_ms) AS worst_p95_ms
    FROM analytics.response_times_hourly WHERE {window} GROUP BY component
), score AS (
    SELECT component, avg(health_score) AS health_score, min(health_score) AS worst_health_score
    FROM analytics.health_score_hourly WHERE {window} GROUP BY component
), comps AS (
    SELECT component FROM up UNION SELECT component FROM err UNION SELECT component FROM rt
)
SELECT comps.component, coalesce(up.checks, 0), coalesce(up.up_checks, 0), coalesce(err.events, 0),
       coalesce(err.errors, 0), rt.p95_ms, rt.worst_p95_ms, score.health_score, score.worst_health_score
FROM comps LEFT JOIN up USING (component) LEFT JOIN err USING (component) LEFT JOIN rt USING (component)
     LEFT JOIN score USING (component)
ORDER BY comps.component
"""

HEALTH_FACTS_SCHEMA: dict[str, pl.DataType] = {
    "component": pl.String(),
    "checks": pl.Int64(),
    "up_checks": pl.Int64(),
    "events": pl.Int64(),
    "errors": pl.Int64(),
    "p95_ms": pl.Float64(),
    "worst_p95_ms": pl.Float64(),
    "health_score": pl.Float64(),
    "worst_health_score": pl.Float64(),
}


def health_facts(
    conn: psycopg.Connection, start: datetime, end: datetime, target: str = DEFAULT_TARGET
) -> pl.DataFrame:
    """Per component over ``[start, end)``: checks, up checks, events, errors, median and worst hourly p95,
    mean and worst health score (:data:`HEALTH_FACTS_SCHEMA`)."""
    query = sql.SQL(_HEALTH_FACTS).format(window=_WINDOW)
    return read_frame(conn, query, {"start": start, "end": end, "target": target}, HEALTH_FACTS_SCHEMA)


def release_facts(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, int]:
    """Migrations and deployments started in ``[start, end)``: totals, failures (any status but success)
    and rollbacks."""
    counts: dict[str, int] = {}
    for name, table in (("migrations", "migration_log"), ("deployments", "deployment_log")):
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE status <> 'success'), count(*) FILTER (WHERE rolled_back) "
                "FROM {} WHERE started_at >= %s AND started_at < %s"
            ).format(sql.Identifier("automation", table)),
            (start, end),
        ).fetchone()
        assert row is not None
        counts[f"{name}_total"], counts[f"{name}_failed"], counts[f"{name}_rolled_back"] = (
            int(v) for v in row
        )
    return counts


ANOMALY_COLUMNS = SCORE_SCHEMA  # one row of analytics.anomalies per scored point


def read_anomalies(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    only_anomalies: bool = True,
    target: str = DEFAULT_TARGET,
) -> pl.DataFrame:
    """Stored scores of ``[start, end)`` (:data:`ANOMALY_COLUMNS`), anomalies only by default."""
    cols = [epoch_us(c) if c == "bucket_start" else sql.Identifier(c) for c in ANOMALY_COLUMNS]
    query = sql.SQL("SELECT {cols} FROM analytics.anomalies WHERE {window}{only}").format(
        cols=sql.SQL(", ").join(cols),
        window=_WINDOW,
        only=sql.SQL(" AND is_anomaly" if only_anomalies else ""),
    )
    return read_frame(
        conn, query, {"start": start, "end": end, "target": target}, ANOMALY_COLUMNS, ("bucket_start",)
    )


TREND_COLUMNS: dict[str, pl.DataType] = {
    "window_hours": pl.Int64(),
    "component": pl.String(),
    "metric": pl.String(),
    "trend": pl.String(),
    "slope": pl.Float64(),
    "slope_per_day": pl.Float64(),
    "slope_ci_low": pl.Float64(),
    "slope_ci_high": pl.Float64(),
    "p_value": pl.Float64(),
    "r_squared": pl.Float64(),
    "confidence": pl.Float64(),
    "data_points": pl.Int64(),
    "mann_kendall_p": pl.Float64(),
    "mann_kendall_tau": pl.Float64(),
    "theil_sen_slope": pl.Float64(),
    "window_start": TS,
    "window_end": TS,
}


def read_trends(
    conn: psycopg.Connection, analyzed_at: datetime, target: str = DEFAULT_TARGET
) -> pl.DataFrame:
    """The trends of one analysis time (:data:`TREND_COLUMNS`)."""
    stamps = [c for c, t in TREND_COLUMNS.items() if t == TS]
    cols = [epoch_us(c) if c in stamps else sql.Identifier(c) for c in TREND_COLUMNS]
    query = sql.SQL("SELECT {} FROM analytics.trends WHERE target = %s AND analyzed_at = %s").format(
        sql.SQL(", ").join(cols)
    )
    return read_frame(conn, query, (target, analyzed_at), TREND_COLUMNS, stamps)


def read_predictions(
    conn: psycopg.Connection, predicted_at: datetime, target: str = DEFAULT_TARGET
) -> list[dict]:
    """The predictions of one analysis time, back in the seed's shape, most likely first."""
    rows = conn.execute(
        "SELECT component, metric, probability, prediction, timeframe, horizon_hours, threshold, direction, "
        "method, last_value, expected_crossing_at, history_points, recommendations, forecast "
        "FROM analytics.failure_predictions WHERE target = %s AND predicted_at = %s "
        "ORDER BY probability DESC, component, metric",
        (target, predicted_at),
    ).fetchall()
    return [
        {
            "prediction": r[3],
            "probability": r[2],
            "timeframe": r[4],
            "recommendations": r[12],
            "component": r[0],
            "metric": r[1],
            "threshold": r[6],
            "direction": r[7],
            "method": r[8],
            "lastValue": r[9],
            "expectedCrossingAt": r[10].isoformat() if r[10] else None,
            "historyPoints": r[11],
            "horizonHours": r[5],
            "forecast": r[13],
        }
        for r in rows
    ]


_ANALYSIS_TIMES = {
    "trends": ("analytics.trends", "analyzed_at"),
    "predictions": ("analytics.failure_predictions", "predicted_at"),
    "insights": ("analytics.insights", "generated_at"),
}


def latest_analysis(
    conn: psycopg.Connection, kind: str, as_of: datetime, target: str = DEFAULT_TARGET
) -> datetime | None:
    """``target``'s latest analysis time of ``kind`` (trends, predictions, insights) at or before ``as_of``."""
    table, column = _ANALYSIS_TIMES[kind]
    row = conn.execute(
        sql.SQL("SELECT max({col}) FROM {table} WHERE target = %s AND {col} <= %s").format(
            col=sql.Identifier(column), table=_table(table)
        ),
        (target, as_of),
    ).fetchone()
    return row[0] if row else None


_LATEST_ANALYSES = """
SELECT (SELECT scored_at FROM analytics.anomalies WHERE target = %(target)s AND bucket_start < %(now)s
        ORDER BY target, bucket_start DESC LIMIT 1),
       (SELECT max(analyzed_at) FROM analytics.trends WHERE target = %(target)s AND analyzed_at <= %(now)s),
       (SELECT max(predicted_at) FROM analytics.failure_predictions
        WHERE target = %(target)s AND predicted_at <= %(now)s),
       (SELECT max(generated_at) FROM analytics.insights WHERE target = %(target)s AND generated_at <= %(now)s)
"""


def latest_analyses(
    conn: psycopg.Connection, now: datetime, target: str = DEFAULT_TARGET
) -> dict[str, datetime | None]:
    """The latest analysis time of anomalies, trends, predictions and insights at or before ``now``, in one
    index-only round trip (the anomalies' time is the ``scored_at`` of the newest scored hour)."""
    row = conn.execute(_LATEST_ANALYSES, {"now": now, "target": target}).fetchone()
    assert row is not None
    return dict(zip(("anomalies", "trends", "predictions", "insights"), row, strict=True))


def read_insights(
    conn: psycopg.Connection, generated_at: datetime | None = None, target: str = DEFAULT_TARGET
) -> dict | None:
    """``target``'s stored insights JSON of one analysis time (default: the latest)."""
    if generated_at is None:
        row = conn.execute(
            "SELECT insights FROM analytics.insights WHERE target = %s ORDER BY generated_at DESC LIMIT 1",
            (target,),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT insights FROM analytics.insights WHERE target = %s AND generated_at = %s",
            (target, generated_at),
        ).fetchone()
    return row[0] if row else None


# ------------------------------------------------------------------------------------------------ writes


def _iso(column: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def write_scores(
    conn: psycopg.Connection,
    scores: pl.DataFrame,
    start: datetime,
    end: datetime,
    scored_at: datetime,
    target: str = DEFAULT_TARGET,
) -> tuple[int, int]:
    """Replace the scores of ``[start, end)`` in ``analytics.anomalies`` and the AI-ops anomaly rows of the
    same hours in ``automation.health_log``, in one transaction; returns (scores, health_log rows) written.

    A health_log row's ``checked_at`` is the end of its hour (when the hour's data was complete, i.e. when
    a live monitor would have seen it), so "anomalies in the last hour" finds the newest scored hour.
    Only the ``default`` target's findings go to this database's ``health_log`` (the seed's SQL reads it as
    its own application's); another target's stay in ``analytics.anomalies`` under its name.
    """
    rows = scores.select(list(ANOMALY_COLUMNS)).with_columns(
        pl.lit(scored_at).cast(TS).alias("scored_at"), pl.lit(target).alias("target")
    )
    found = scores.filter(pl.col("is_anomaly"))
    metadata = pl.struct(
        "component",
        "metric",
        pl.col("confidence").round(4),
        pl.col("expected_value").alias("expectedValue"),
        pl.col("actual_value").alias("actualValue"),
        "severity",
        "reason",
        _iso("bucket_start").alias("bucketStart"),
        pl.col("anomaly_score").alias("anomalyScore"),
        pl.col("robust_z").alias("robustZ"),
        "method",
        pl.col("p_value").alias("pValue"),
    ).struct.json_encode()
    health = found.select(
        (pl.col("bucket_start") + HOUR).alias("checked_at"),
        pl.lit(AI_OPS_SOURCE).alias("source"),
        pl.lit("anomaly").alias("kind"),
        pl.col("severity").alias("status"),
        pl.format("{} {}: {}", "component", "metric", "reason").alias("message"),
        metadata.alias("metadata"),
    )
    with conn.transaction():
        serialize_writes(conn, f"analytics.anomalies:{target}")
        conn.execute(
            "DELETE FROM analytics.anomalies WHERE target = %s AND bucket_start >= %s AND bucket_start < %s",
            (target, start, end),
        )
        written = copy_frame(conn, "analytics.anomalies", rows)
        if target != DEFAULT_TARGET:
            return written, 0
        conn.execute(
            "DELETE FROM automation.health_log WHERE source = %s AND kind = 'anomaly' "
            "AND checked_at >= %s AND checked_at < %s",
            (AI_OPS_SOURCE, start + HOUR, end + HOUR),
        )
        logged = copy_frame(conn, "automation.health_log", health)
    return written, logged


def write_trends(
    conn: psycopg.Connection, trends: pl.DataFrame, analyzed_at: datetime, target: str = DEFAULT_TARGET
) -> int:
    """Replace ``target``'s trends of ``analyzed_at``; ``trends`` has :data:`TREND_COLUMNS`."""
    rows = trends.select(
        pl.lit(analyzed_at).cast(TS).alias("analyzed_at"), *TREND_COLUMNS, pl.lit(target).alias("target")
    ).with_columns(pl.col("window_hours").cast(pl.Int32), pl.col("data_points").cast(pl.Int32))
    with conn.transaction():
        serialize_writes(conn, f"analytics.trends:{target}")
        conn.execute(
            "DELETE FROM analytics.trends WHERE target = %s AND analyzed_at = %s", (target, analyzed_at)
        )
        return copy_frame(conn, "analytics.trends", rows)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_predictions(
    conn: psycopg.Connection,
    predictions: Sequence[Mapping[str, Any]],
    predicted_at: datetime,
    target: str = DEFAULT_TARGET,
) -> int:
    """Replace ``target``'s predictions of ``predicted_at`` (dicts in the seed's shape from
    ``predict_failures``)."""
    rows = [
        (
            target,
            predicted_at,
            p["component"],
            p["metric"],
            float(p["probability"]),
            p["prediction"],
            p["timeframe"],
            int(p.get("horizonHours") or int(str(p["timeframe"]).split()[0])),
            _finite(p.get("threshold")),
            p.get("direction"),
            p.get("method"),
            _finite(p.get("lastValue")),
            p.get("expectedCrossingAt"),
            p.get("historyPoints"),
            Jsonb(list(p.get("recommendations") or [])),
            Jsonb(json_safe(list(p.get("forecast") or []))),
        )
        for p in predictions
    ]
    with conn.transaction():
        serialize_writes(conn, f"analytics.failure_predictions:{target}")
        conn.execute(
            "DELETE FROM analytics.failure_predictions WHERE target = %s AND predicted_at = %s",
            (target, predicted_at),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO analytics.failure_predictions (target, predicted_at, component, metric, "
                "probability, prediction, timeframe, horizon_hours, threshold, direction, method, last_value, "
                "expected_crossing_at, history_points, recommendations, forecast) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    return len(rows)


def write_insights(conn: psycopg.Connection, record: Mapping[str, Any], target: str = DEFAULT_TARGET) -> None:
    """Replace ``target``'s insights row of ``record['generated_at']``."""
    with conn.transaction():
        serialize_writes(conn, f"analytics.insights:{target}")
        conn.execute(
            "DELETE FROM analytics.insights WHERE target = %s AND generated_at = %s",
            (target, record["generated_at"]),
        )
        conn.execute(
            "INSERT INTO analytics.insights (target, generated_at, window_start, window_end, health, summary, "
            "insights, facts, ai_status, ai_error, model, input_hash, prompt_tokens, completion_tokens, "
            "total_tokens) VALUES (%(target)s, %(generated_at)s, %(window_start)s, %(window_end)s, %(health)s, "
            "%(summary)s, %(insights)s, %(facts)s, %(ai_status)s, %(ai_error)s, %(model)s, %(input_hash)s, "
            "%(prompt_tokens)s, %(completion_tokens)s, %(total_tokens)s)",
            {
                **record,
                "target": target,
                "insights": Jsonb(record["insights"]),
                "facts": Jsonb(record["facts"]),
            },
        )


# --------------------------------------------------------------------------------------------- LLM cache


def cache_get(conn: psycopg.Connection, input_hash: str) -> dict | None:
    """The cached answer for ``input_hash`` (and count the hit), or None."""
    row = conn.execute(
        "UPDATE analytics.llm_cache SET hits = hits + 1, last_hit_at = now() WHERE input_hash = %s "
        "RETURNING model, response, prompt_tokens, completion_tokens, total_tokens, hits",
        (input_hash,),
    ).fetchone()
    if row is None:
        return None
    keys = ("model", "response", "prompt_tokens", "completion_tokens", "total_tokens", "hits")
    return dict(zip(keys, row, strict=True))


def cache_put(
    conn: psycopg.Connection,
    input_hash: str,
    model: str,
    response: str,
    usage: Mapping[str, int | None],
) -> None:
    """Store an answer (a concurrent writer of the same facts wins; both answers are equally valid)."""
    conn.execute(
        "INSERT INTO analytics.llm_cache (input_hash, model, response, prompt_tokens, completion_tokens, "
        "total_tokens) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (input_hash) DO NOTHING",
        (
            input_hash,
            model,
            response,
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            usage.get("total_tokens"),
        ),
    )
