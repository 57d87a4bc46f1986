"""The ``autopilot_*`` metrics in Prometheus's exposition, built with prometheus-client. Pure: no network.

:class:`MetricsSnapshot` holds the values (read by :func:`autopilot_pipeline.metrics.store.read_metrics_snapshot`);
:func:`build_registry` turns it into a fresh ``CollectorRegistry`` (no global state, no ``_created``
series), which the Pushgateway push sends and any scrape endpoint can render.

Names and labels (docs/ALERTING_RULES.md): the seed's eleven names unchanged; response times carry
``stat`` = avg|p95|p99; uptime, success rates and the health score are percentages; ``*_total`` are
monotonic counters (all-time totals), so Prometheus can ``rate()`` them. A snapshot of one monitored target
carries ``target="<name>"`` on every series (the push's grouping key holds it too).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["EXTRA_METRICS", "SEED_METRICS", "MetricsSnapshot", "build_registry"]

SEED_METRICS = (
    "autopilot_uptime_percentage",
    "autopilot_health_checks_total",
    "autopilot_errors_total",
    "autopilot_response_time_ms",
    "autopilot_migrations_total",
    "autopilot_migrations_success_rate",
    "autopilot_rollbacks_total",
    "autopilot_migration_duration_ms",
    "autopilot_deployments_total",
    "autopilot_deployment_success_rate",
    "autopilot_health_score",
)
EXTRA_METRICS = (
    "autopilot_degraded_percentage",
    "autopilot_alerts_firing",
    "autopilot_last_success_timestamp_seconds",
    "autopilot_anomalies_total",
    "autopilot_failure_probability",
)


@dataclass(frozen=True)
class MetricsSnapshot:
    """Values to expose. Frames: ``component, value`` (``response_times`` adds ``stat``; ``anomalies_total``
    and ``failure_probability`` add ``metric``). A None rate/duration is not exposed (nothing ran in its
    window); ``failure_probability`` is None while the AI-ops predictions table does not exist."""

    as_of: datetime
    uptime: pl.DataFrame
    health_score: pl.DataFrame
    response_times: pl.DataFrame
    health_checks_total: pl.DataFrame
    errors_total: pl.DataFrame
    migrations_total: float
    rollbacks_total: float
    deployments_total: float
    migrations_success_rate: float | None
    deployment_success_rate: float | None
    migration_duration_ms: float | None
    alerts_firing: Mapping[str, int]
    anomalies_total: pl.DataFrame | None = None
    failure_probability: pl.DataFrame | None = None
    degraded: pl.DataFrame | None = None


def _labelled(
    family: GaugeMetricFamily | CounterMetricFamily, frame: pl.DataFrame | None, labels: list[str]
) -> GaugeMetricFamily | CounterMetricFamily:
    if frame is not None:
        for row in frame.select(*labels, "value").drop_nulls().iter_rows():
            family.add_metric([str(v) for v in row[:-1]], float(row[-1]))
    return family


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: MetricsSnapshot, pushed_at: float, target: str | None = None) -> None:
        self.snapshot = snapshot
        self.pushed_at = pushed_at
        self.target = target

    def collect(self) -> Iterator[Metric]:
        for family in self._families():
            if self.target is not None:
                family.samples = [
                    sample._replace(labels={**sample.labels, "target": self.target})
                    for sample in family.samples
                ]
            yield family

    def _families(self) -> Iterator[Metric]:
        s = self.snapshot
        c = ["component"]
        yield _labelled(
            GaugeMetricFamily(
                "autopilot_uptime_percentage",
                "Uptime % of the component's latest hour (up checks / checks)",
                labels=c,
            ),
            s.uptime,
            c,
        )
        yield _labelled(
            GaugeMetricFamily(
                "autopilot_degraded_percentage",
                "Share of degraded checks in the component's latest hour (%; degraded counts as up)",
                labels=c,
            ),
            s.degraded,
            c,
        )
        yield _labelled(
            CounterMetricFamily(
                "autopilot_health_checks_total", "Health checks analysed, all time", labels=c
            ),
            s.health_checks_total,
            c,
        )
        yield _labelled(
            CounterMetricFamily(
                "autopilot_errors_total", "Errors (error events + failed checks), all time", labels=c
            ),
            s.errors_total,
            c,
        )
        yield _labelled(
            GaugeMetricFamily(
                "autopilot_response_time_ms",
                "Response time of the component's latest hour, by stat (avg, p95, p99)",
                labels=["component", "stat"],
            ),
            s.response_times,
            ["component", "stat"],
        )
        yield CounterMetricFamily(
            "autopilot_migrations_total", "Database migrations, all time", value=s.migrations_total
        )
        if s.migrations_success_rate is not None:
            yield GaugeMetricFamily(
                "autopilot_migrations_success_rate",
                "% of migrations in the last 24 h that succeeded",
                value=s.migrations_success_rate,
            )
        yield CounterMetricFamily(
            "autopilot_rollbacks_total", "Migration rollbacks, all time", value=s.rollbacks_total
        )
        if s.migration_duration_ms is not None:
            yield GaugeMetricFamily(
                "autopilot_migration_duration_ms",
                "Mean migration duration in the last 24 h (ms)",
                value=s.migration_duration_ms,
            )
        yield CounterMetricFamily(
            "autopilot_deployments_total", "Deployments, all time", value=s.deployments_total
        )
        if s.deployment_success_rate is not None:
            yield GaugeMetricFamily(
                "autopilot_deployment_success_rate",
                "% of deployments in the last 24 h that succeeded",
                value=s.deployment_success_rate,
            )
        yield _labelled(
            GaugeMetricFamily(
                "autopilot_health_score",
                "Composite health score 0-100 of the component's latest hour",
                labels=c,
            ),
            s.health_score,
            c,
        )
        firing = GaugeMetricFamily(
            "autopilot_alerts_firing",
            "Alert instances firing in the engine, by severity",
            labels=["severity"],
        )
        for severity, count in sorted(s.alerts_firing.items()):
            firing.add_metric([severity], float(count))
        yield firing
        yield GaugeMetricFamily(
            "autopilot_last_success_timestamp_seconds",
            "Unix time the values were last read from the tables (push or scrape)",
            value=self.pushed_at,
        )
        if s.anomalies_total is not None:
            yield _labelled(
                CounterMetricFamily(
                    "autopilot_anomalies_total",
                    "AI-ops anomalies found, all time",
                    labels=["component", "metric"],
                ),
                s.anomalies_total,
                ["component", "metric"],
            )
        if s.failure_probability is not None:
            yield _labelled(
                GaugeMetricFamily(
                    "autopilot_failure_probability",
                    "Probability (0-1) of a failure within the prediction horizon",
                    labels=["component", "metric"],
                ),
                s.failure_probability,
                ["component", "metric"],
            )


def build_registry(
    snapshot: MetricsSnapshot, pushed_at: float, target: str | None = None
) -> CollectorRegistry:
    """A fresh registry exposing ``snapshot``; ``pushed_at`` (Unix seconds) is the last-success timestamp;
    ``target`` labels every series with the monitored database it describes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot, pushed_at, target))
    return registry
