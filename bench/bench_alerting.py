"""Hand-run benchmark of the alerting engine: 1,000 rules over 100 components, evaluated every minute.

    python bench/bench_alerting.py [--rules 1000 --components 100 --evaluations 11]

A throw-away embedded Postgres (or AUTOPILOT_DATABASE_URL's server, in a new database) gets an hour of
health checks every 30 s per component, error events, three custom metrics sampled every minute and a few
migrations; then ``--rules`` seeded random rules over every built-in and custom metric (conditions,
thresholds around the data, durations 0-10 min, some hysteresis, keep-firing and no-data policies).
Each evaluation is the whole engine (``evaluate_alert_rules``: read rules, states, windows and
suppressions; compute values; run the state machine; write states, history and the log in one
transaction). Reported: per-evaluation wall time (median, max), and the same steps timed separately.
Results go to docs/BENCHMARKS.md ("Alerting engine").
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.alerting import metric_catalog as catalog
from autopilot_pipeline.alerting import store
from autopilot_pipeline.alerting.engine import evaluate_alert_rules
from autopilot_pipeline.alerting.state_machine import evaluate_batch
from autopilot_pipeline.postgres import migrate, urls
from autopilot_pipeline.postgres.io import copy_frame

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")
CUSTOM = ("memory_usage_pct", "cpu_usage_pct", "db_connections")


def _health(components: int, rng: np.random.Generator, minutes: int) -> pl.DataFrame:
    start, end = T0 - timedelta(hours=1), T0 + timedelta(minutes=minutes)
    steps = int((end - start) / timedelta(seconds=30))
    rows = components * steps
    comp = np.repeat(np.arange(components), steps)
    at = np.tile(np.arange(steps) * 30_000_000, components) + int(start.timestamp() * 1e6)
    base = rng.uniform(50, 3000, components)[comp]
    latency = base * rng.lognormal(0, 0.4, rows)
    down_rate = rng.choice([0.0, 0.02, 0.08, 0.2], components, p=[0.85, 0.1, 0.04, 0.01])[comp]
    status = np.where(
        rng.random(rows) < down_rate, "down", np.where(latency > 4 * base, "degraded", "healthy")
    )
    checks = pl.DataFrame(
        {
            "checked_at": pl.Series(at).cast(TS),
            "source": pl.Series([f"svc-{c:03d}" for c in comp]),
            "kind": "health_check",
            "status": status,
            "response_time_ms": np.round(latency, 1),
        }
    ).with_columns(
        response_time_ms=pl.when(pl.col("status") == "down").then(None).otherwise(pl.col("response_time_ms"))
    )
    errors = checks.filter(pl.lit(rng.random(rows) < 0.03)).with_columns(
        kind=pl.lit("error"), status=pl.lit("error"), response_time_ms=pl.lit(None, dtype=pl.Float64)
    )
    both = pl.concat([checks, errors]).with_columns(inserted_at=pl.col("checked_at") + timedelta(seconds=1))
    return both.sort("checked_at")


def _samples(components: int, rng: np.random.Generator, minutes: int) -> pl.DataFrame:
    start = T0 - timedelta(minutes=10)
    steps = 10 + minutes + 1
    parts = []
    for metric, (low, high) in zip(CUSTOM, ((20, 99), (5, 100), (1, 200)), strict=True):
        level = rng.uniform(low, high, components)
        at = [start + timedelta(minutes=m) for m in range(steps)]
        parts.append(
            pl.DataFrame(
                {
                    "sampled_at": pl.Series([t for _ in range(components) for t in at]).cast(TS),
                    "source": [f"svc-{c:03d}" for c in range(components) for _ in at],
                    "metric_name": metric,
                    "value": np.round(np.repeat(level, steps) * rng.normal(1, 0.05, components * steps), 2),
                }
            )
        )
    return pl.concat(parts).with_columns(inserted_at=pl.col("sampled_at") + timedelta(seconds=1))


# name -> (condition, threshold range): "typical" thresholds sit in the tail of the data (a few per cent
# of instances active), "storm" thresholds anywhere in its range (about a third active, thousands firing).
SCENARIOS = {
    "typical": {
        "uptime_percentage": ("<", (90, 97)),
        "errors_per_hour": (">", (15, 40)),
        "response_time_p95_ms": (">", (5000, 10000)),
        "response_time_avg_ms": (">", (2000, 5000)),
        "migration_failures": (">", (0, 0)),
        "memory_usage_pct": (">", (85, 98)),
        "cpu_usage_pct": (">=", (90, 99)),
        "db_connections": (">", (150, 195)),
    },
    "storm": {
        "uptime_percentage": ("<", (85, 99.5)),
        "errors_per_hour": (">", (2, 40)),
        "response_time_p95_ms": (">", (500, 8000)),
        "response_time_avg_ms": (">", (200, 4000)),
        "migration_failures": (">", (0, 0)),
        "memory_usage_pct": (">", (50, 95)),
        "cpu_usage_pct": (">=", (40, 95)),
        "db_connections": (">", (50, 180)),
    },
}


def _rules(n: int, rng: np.random.Generator, scenario: str) -> pl.DataFrame:
    metrics = SCENARIOS[scenario]
    names = list(metrics)
    picks = rng.integers(0, len(names), n)
    rows = []
    for i, p in enumerate(picks):
        name = names[p]
        condition, (low, high) = metrics[name]
        threshold = float(np.round(rng.uniform(low, high), 1))
        hysteresis = rng.random() < 0.2 and condition in (">", ">=")
        rows.append(
            {
                "name": f"bench rule {i:04d}",
                "metric_name": name,
                "condition": condition,
                "threshold": threshold,
                "duration_minutes": int(rng.integers(0, 11)),
                "severity": ["info", "warning", "critical"][int(rng.integers(0, 3))],
                "notify_slack": bool(rng.random() < 0.5),
                "recovery_threshold": threshold * 0.9 if hysteresis else None,
                "keep_firing_for_minutes": int(rng.integers(0, 3)) if rng.random() < 0.2 else 0,
                "no_data_policy": ["ok", "keep_last", "alert"][int(rng.choice(3, p=[0.8, 0.15, 0.05]))],
            }
        )
    return pl.DataFrame(rows, schema_overrides={"recovery_threshold": pl.Float64})


def _database() -> tuple[str, callable]:
    configured = os.environ.get("AUTOPILOT_DATABASE_URL")
    if configured:
        server_url, stop = urls.libpq_url(configured), (lambda: None)
    else:
        from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-alerting-")), fast=True)
        server.start()
        server_url, stop = server.url(), server.stop
    name = f"bench_alerting_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(urls.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def cleanup() -> None:
        with psycopg.connect(urls.with_database(server_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        stop()

    return urls.with_database(server_url, name), cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--components", type=int, default=100)
    parser.add_argument("--evaluations", type=int, default=11)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="typical")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    url, cleanup = _database()
    try:
        migrate.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            with conn.transaction():
                conn.execute("DELETE FROM automation.alert_rules")  # exactly --rules rules
                copy_frame(conn, "automation.health_log", _health(args.components, rng, args.evaluations))
                copy_frame(
                    conn, "automation.metric_samples", _samples(args.components, rng, args.evaluations)
                )
                copy_frame(conn, "automation.alert_rules", _rules(args.rules, rng, args.scenario))
                conn.execute(
                    "INSERT INTO automation.migration_log (version, started_at, status) VALUES "
                    "('1', %s, 'failed'), ('2', %s, 'success')",
                    (T0 - timedelta(minutes=20), T0 - timedelta(minutes=10)),
                )
            conn.execute("ANALYZE")
            rows = conn.execute("SELECT count(*) FROM automation.health_log").fetchone()[0]
            print(
                f"data: {rows:,} health_log rows, {args.components} components, {args.rules} rules "
                f"({args.scenario})"
            )

            times, outcomes = [], []
            for minute in range(args.evaluations):
                started = time.perf_counter()
                result = evaluate_alert_rules(conn, T0 + timedelta(minutes=minute))
                times.append(time.perf_counter() - started)
                outcomes.append(result)
                print(
                    f"  {minute:2d}: {times[-1] * 1000:7.1f} ms  instances {result.instances_evaluated:,}  "
                    f"pending {result.pending:,}  firing {result.firing:,}  fired {result.fired.height:,}  "
                    f"resolved {result.resolved.height:,}  skipped {result.skipped.height}"
                )
            steady = times[1:] or times
            print(
                f"whole evaluation: median {statistics.median(steady) * 1000:.0f} ms, "
                f"max {max(steady) * 1000:.0f} ms (first, with empty state: {times[0] * 1000:.0f} ms)"
            )

            # the same steps, timed separately, at the next minute
            now = T0 + timedelta(minutes=args.evaluations)
            t = time.perf_counter()
            rules = store.read_rules(conn)
            names = rules["metric_name"].unique().to_list()
            inputs = store.read_metric_inputs(conn, catalog.sources_for(names), now)
            states = store.read_states(conn)
            t_read = time.perf_counter() - t
            t = time.perf_counter()
            values = catalog.rule_values(rules, catalog.metric_values(names, inputs))
            t_values = time.perf_counter() - t
            t = time.perf_counter()
            batch = evaluate_batch(rules, states, values, now)
            t_batch = time.perf_counter() - t
            print(
                f"steps: reads {t_read * 1000:.0f} ms, metric values {t_values * 1000:.0f} ms, "
                f"state machine {t_batch * 1000:.0f} ms over {batch.states.height:,} instances "
                f"({states.height:,} stored states)"
            )
    finally:
        cleanup()


if __name__ == "__main__":
    main()
