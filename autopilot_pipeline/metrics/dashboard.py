"""The autopilot Grafana dashboard, as code (grafana-foundation-sdk, Grafana 11.6 build).

``autopilot grafana export`` writes :func:`build_dashboard` to ``grafana/dashboards/autopilot.json``;
``grafana/provisioning/`` loads it. No Grafana server is needed to check it: tests compare the committed
JSON with a fresh export and run every panel's PromQL (:func:`panel_queries`) against a real Prometheus.

Metric conventions (see docs/ALERTING_RULES.md): response times carry ``stat`` = avg|p95|p99; success
rates and uptime are percentages (0-100); failure probability is a fraction (0-1); ``*_total`` are
monotonic counters, so panels use ``rate()``/``increase()`` on them. Every series carries the monitored
database it describes as ``target``: the ``$target`` variable filters every panel (series pushed before
targets existed have no such label and match "All").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.bargauge import Panel as BarGauge
from grafana_foundation_sdk.builders.common import ReduceDataOptions, StackingConfig, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueGraphMode,
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

__all__ = ["DASHBOARD_UID", "DEFAULT_PATH", "build_dashboard", "export", "panel_queries", "render"]

DASHBOARD_UID = "autopilot"
DEFAULT_PATH = Path("grafana") / "dashboards" / "autopilot.json"  # relative to the project root

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
T = 'target=~"$target"'
C = f'{T}, component=~"$component"'


def _query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Dataquery:
    q = Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    return q.instant() if instant else q.range()


def _steps(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    thresholds = [Threshold(value=value, color=color) for value, color in steps]
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(thresholds)


_GOOD_HIGH_PCT = _steps((None, "red"), (90, "orange"), (95, "green"))  # uptime, success rates
_OK_ZERO = _steps((None, "green"), (1, "red"))


def _stat(title: str, query: Dataquery, unit: str, thresholds: ThresholdsConfig, width: int = 6) -> Stat:
    return (
        Stat()
        .title(title)
        .datasource(DS)
        .with_target(query)
        .unit(unit)
        .height(5)
        .span(width)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.AREA)
        .thresholds(thresholds)
    )


def _timeseries(title: str, queries: list[Dataquery], unit: str, width: int = 12) -> Timeseries:
    panel = (
        Timeseries()
        .title(title)
        .datasource(DS)
        .unit(unit)
        .height(8)
        .span(width)
        .line_width(2)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def _panels() -> Iterator[Row | Stat | Timeseries | BarGauge]:
    """Rows and panels in display order; every metric the pipeline pushes appears at least once."""
    yield Row("Overview")
    yield (
        _stat(
            "Health score (worst component)",
            _query(f"min(autopilot_health_score{{{C}}})", instant=True),
            "none",
            _steps((None, "red"), (60, "orange"), (80, "green")),
        )
        .min(0)
        .max(100)
        .description("Composite 0-100 score per component (autopilot_health_score).")
    )
    yield _stat(
        "Uptime (worst component)",
        _query(f"min(autopilot_uptime_percentage{{{C}}})", instant=True),
        "percent",
        _GOOD_HIGH_PCT,
    ).decimals(2)
    yield _stat(
        "Firing alerts",
        _query(f"sum(autopilot_alerts_firing{{{T}}})", instant=True),
        "none",
        _OK_ZERO,
    ).description("Alert instances firing in the autopilot engine, all severities.")
    yield _stat(
        "Since last successful run",
        _query(f"time() - max(autopilot_last_success_timestamp_seconds{{{T}}})", instant=True),
        "s",
        _steps((None, "green"), (7200, "orange"), (10800, "red")),
    ).description("Age of the last successful metrics push; pushed values never go stale on their own.")

    yield Row("Health")
    yield _timeseries(
        "Uptime by component",
        [_query(f"autopilot_uptime_percentage{{{C}}}", "{{target}} {{component}}")],
        "percent",
    ).max(100)
    yield _timeseries(
        "Degraded checks by component (counted as up)",
        [_query(f"autopilot_degraded_percentage{{{C}}}", "{{target}} {{component}}")],
        "percent",
    ).min(0)
    yield (
        _timeseries(
            "Health score by component",
            [_query(f"autopilot_health_score{{{C}}}", "{{target}} {{component}}")],
            "none",
            width=24,
        )
        .min(0)
        .max(100)
    )
    yield _timeseries(
        "Response time (avg / p95 / p99)",
        [_query(f"autopilot_response_time_ms{{{C}}}", "{{target}} {{component}} {{stat}}")],
        "ms",
        width=24,
    ).description("autopilot_response_time_ms by component and stat (avg, p95, p99).")
    yield _timeseries(
        "Error rate (errors/s, 5m)",
        [
            _query(
                f"sum by (target, component) (rate(autopilot_errors_total{{{C}}}[5m]))",
                "{{target}} {{component}}",
            )
        ],
        "short",
    ).description("The seed's alert expression rate(autopilot_errors_total[5m]); its threshold is 0.1/s.")
    yield _timeseries(
        "Errors in the last hour",
        [
            _query(
                f"sum by (target, component) (increase(autopilot_errors_total{{{C}}}[1h]))",
                "{{target}} {{component}}",
            )
        ],
        "short",
    ).description("What the High Error Rate rule compares with 10.")
    yield _timeseries(
        "Health checks (per second, 5m)",
        [
            _query(
                f"sum by (target, component) (rate(autopilot_health_checks_total{{{C}}}[5m]))",
                "{{target}} {{component}}",
            )
        ],
        "cps",
        width=24,
    )

    yield Row("Releases")
    yield _stat(
        "Migrations",
        _query(f"sum(autopilot_migrations_total{{{T}}})", instant=True),
        "none",
        _steps((None, "blue")),
        width=4,
    )
    yield _stat(
        "Migration success rate",
        _query(f"min(autopilot_migrations_success_rate{{{T}}})", instant=True),
        "percent",
        _GOOD_HIGH_PCT,
        width=4,
    )
    yield _stat(
        "Deployments",
        _query(f"sum(autopilot_deployments_total{{{T}}})", instant=True),
        "none",
        _steps((None, "blue")),
        width=4,
    )
    yield _stat(
        "Deployment success rate",
        _query(f"min(autopilot_deployment_success_rate{{{T}}})", instant=True),
        "percent",
        _GOOD_HIGH_PCT,
        width=4,
    )
    yield _stat(
        "Rollbacks", _query(f"sum(autopilot_rollbacks_total{{{T}}})", instant=True), "none", _OK_ZERO, width=8
    )
    yield _timeseries(
        "Migrations, deployments and rollbacks per hour",
        [
            _query(f"sum(increase(autopilot_migrations_total{{{T}}}[1h]))", "migrations", "A"),
            _query(f"sum(increase(autopilot_deployments_total{{{T}}}[1h]))", "deployments", "B"),
            _query(f"sum(increase(autopilot_rollbacks_total{{{T}}}[1h]))", "rollbacks", "C"),
        ],
        "short",
    )
    yield _timeseries(
        "Success rates",
        [
            _query(f"autopilot_migrations_success_rate{{{T}}}", "{{target}} migrations", "A"),
            _query(f"autopilot_deployment_success_rate{{{T}}}", "{{target}} deployments", "B"),
        ],
        "percent",
    ).max(100)
    yield _timeseries(
        "Migration duration",
        [_query(f"autopilot_migration_duration_ms{{{T}}}", "{{target}}")],
        "ms",
        width=24,
    )

    yield Row("Alerts and AI ops")
    yield (
        _timeseries(
            "Firing alerts by severity",
            [_query(f"sum by (severity) (autopilot_alerts_firing{{{T}}})", "{{severity}}")],
            "none",
        )
        .draw_style(GraphDrawStyle.BARS)
        .stacking(StackingConfig().mode(StackingMode.NORMAL))
    )
    yield _timeseries(
        "Anomalies per hour",
        [
            _query(
                f"sum by (target, component, metric) (increase(autopilot_anomalies_total{{{C}}}[1h]))",
                "{{target}} {{component}} {{metric}}",
            )
        ],
        "short",
    )
    yield (
        BarGauge()
        .title("Failure probability (24 h)")
        .datasource(DS)
        .height(8)
        .span(24)
        .with_target(
            _query(
                f"autopilot_failure_probability{{{C}}}", "{{target}} {{component}} {{metric}}", instant=True
            )
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_steps((None, "green"), (0.5, "orange"), (0.75, "red")))
    )


def build_dashboard() -> dict[str, Any]:
    """The dashboard as plain JSON-ready data (what Grafana imports)."""
    dash = (
        Dashboard("Autopilot")
        .uid(DASHBOARD_UID)
        .tags(["autopilot", "generated"])
        .description("Autopilot health, releases, alerts and AI-ops predictions (generated: do not edit).")
        .refresh("30s")
        .time("now-24h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("target")
            .label("Target")
            .datasource(DS)
            .query("label_values(autopilot_uptime_percentage, target)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .include_all(True)
            .multi(True)
            .all_value(".*")
        )
        .with_variable(
            QueryVariable("component")
            .label("Component")
            .datasource(DS)
            .query(f"label_values(autopilot_uptime_percentage{{{T}}}, component)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .include_all(True)
            .multi(True)
            .all_value(".*")
        )
    )
    for panel_id, item in enumerate(_panels(), start=1):  # stable ids: links to a panel survive re-exports
        if isinstance(item, Row):
            dash = dash.with_row(item.id(panel_id))
        else:
            dash = dash.with_panel(item.id(panel_id))
    return json.loads(json.dumps(dash.build(), cls=JSONEncoder))


def render(dashboard: Mapping[str, Any] | None = None) -> str:
    """Stable text form (sorted keys, two-space indent, final newline) so the committed file diffs cleanly."""
    return json.dumps(build_dashboard() if dashboard is None else dashboard, indent=2, sort_keys=True) + "\n"


def export(path: Path) -> Path:
    """Write the dashboard JSON to ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    return path


_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)")
BUILTIN_SUBSTITUTIONS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def _all_panels(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _all_panels(panel.get("panels") or [])  # collapsed rows nest their panels


def panel_queries(dashboard: Mapping[str, Any], substitutions: Mapping[str, str]) -> list[str]:
    """Every panel target's PromQL with ``$var`` / ``${var}`` / ``${var:fmt}`` replaced, in panel order.

    ``substitutions`` maps variable names to text (e.g. ``{"component": ".*"}``); Grafana's built-ins
    (``$__rate_interval`` ...) default to :data:`BUILTIN_SUBSTITUTIONS`. A variable left without a value
    raises ``KeyError`` so a new variable can't silently produce a broken query.
    """
    values = {**BUILTIN_SUBSTITUTIONS, **substitutions}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no substitution for dashboard variable ${name}")
        return values[name]

    return [
        _VARIABLE.sub(replace, target["expr"])
        for panel in _all_panels(dashboard.get("panels") or [])
        for target in panel.get("targets") or []
        if target.get("expr")
    ]
