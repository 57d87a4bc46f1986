"""The generated Grafana dashboard: structure, variables, committed JSON, and PromQL that returns data.

There is no Grafana server to import into (FACTS.md section 7), so the JSON is checked structurally, and
every panel query is parsed and evaluated by Prometheus's own engine (promtool) over synthetic series
shaped like the pipeline's push.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from autopilot_pipeline.cli import main
from autopilot_pipeline.metrics.dashboard import DEFAULT_PATH, build_dashboard, panel_queries, render
from autopilot_pipeline.settings import PROJECT_ROOT

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus); CI installs it"
)
METRICS = [
    "autopilot_uptime_percentage",
    "autopilot_degraded_percentage",
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
    "autopilot_alerts_firing",
    "autopilot_last_success_timestamp_seconds",
    "autopilot_anomalies_total",
    "autopilot_failure_probability",
]
COMPONENT_METRICS = {
    m
    for m in METRICS
    if m
    in {
        "autopilot_uptime_percentage",
        "autopilot_degraded_percentage",
        "autopilot_health_checks_total",
        "autopilot_errors_total",
        "autopilot_response_time_ms",
        "autopilot_health_score",
        "autopilot_anomalies_total",
        "autopilot_failure_probability",
    }
}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return build_dashboard()


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_dashboard_identity(dashboard: dict) -> None:
    assert dashboard["uid"] == "autopilot" and dashboard["title"] == "Autopilot"
    assert dashboard["schemaVersion"] == 41  # the Grafana 11.6 build of the SDK (FACTS.md trap 4)
    assert [p["title"] for p in dashboard["panels"] if p["type"] == "row"] == [
        "Overview",
        "Health",
        "Releases",
        "Alerts and AI ops",
    ]


def test_variables(dashboard: dict) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "target", "component"}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    comp = variables["component"]
    assert comp["type"] == "query" and comp["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert comp["query"] == 'label_values(autopilot_uptime_percentage{target=~"$target"}, component)'
    assert comp["includeAll"] and comp["multi"] and comp["allValue"] == ".*"
    target = variables["target"]
    assert target["type"] == "query" and target["datasource"] == {
        "type": "prometheus",
        "uid": "${datasource}",
    }
    assert target["query"] == "label_values(autopilot_uptime_percentage, target)"
    assert target["includeAll"] and target["multi"] and target["allValue"] == ".*"


def test_every_panel_has_a_prometheus_target(dashboard: dict) -> None:
    panels = _panels(dashboard)
    assert len(panels) >= 15
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(i > 0 for i in ids)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]


def test_every_metric_is_on_the_dashboard(dashboard: dict) -> None:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p["targets"]]
    for metric in METRICS:
        assert any(re.search(rf"\b{metric}\b", e) for e in exprs), metric
    # Counters are shown through rate()/increase(), never raw.
    for e in exprs:
        for counter in re.findall(r"autopilot_\w+_total\b", e):
            assert re.search(rf"(rate|increase)\({counter}\b", e) or e.startswith("sum(autopilot_"), e
    # Component-labelled metrics follow the $component variable; response time uses the `stat` label.
    for e in exprs:
        for metric in COMPONENT_METRICS:
            if re.search(rf"\b{metric}\{{", e):
                assert 'component=~"$component"' in e, e
    # every query follows the $target variable (one dashboard for every monitored database)
    for e in exprs:
        for metric in re.findall(r"\bautopilot_\w+", e):
            assert re.search(rf'\b{metric}\{{target=~"\$target"', e), e
    response = [p for p in _panels(dashboard) if "autopilot_response_time_ms" in p["targets"][0]["expr"]]
    assert response and "{{stat}}" in response[0]["targets"][0]["legendFormat"]


def test_committed_json_equals_a_fresh_export() -> None:
    committed = PROJECT_ROOT / DEFAULT_PATH
    assert committed.read_text() == render(), "run `autopilot grafana export` and commit the result"


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "dash.json"
    assert main(["grafana", "export", "--output", str(out)]) == 0
    assert out.read_text() == render()
    assert "panels" in capsys.readouterr().out
    assert main(["grafana", "export", "--output", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_panel_queries_substitutes_variables(dashboard: dict) -> None:
    queries = panel_queries(dashboard, {"target": ".*", "component": "api|web"})
    assert len(queries) == sum(len(p["targets"]) for p in _panels(dashboard))
    assert not any("$" in q for q in queries)
    assert 'autopilot_uptime_percentage{target=~".*", component=~"api|web"}' in queries
    nested = {
        "panels": [
            {
                "type": "row",
                "panels": [
                    {"targets": [{"expr": 'rate(m{c=~"${component:regex}"}[$__rate_interval]) / ${x}'}]},
                ],
            }
        ]
    }
    assert panel_queries(nested, {"component": "a", "x": "2"}) == ['rate(m{c=~"a"}[5m]) / 2']
    overridden = panel_queries(nested, {"component": "a", "x": "2", "__rate_interval": "1m"})
    assert overridden == ['rate(m{c=~"a"}[1m]) / 2']
    with pytest.raises(KeyError, match="x"):
        panel_queries(nested, {"component": "a"})


def _synthetic_series() -> list[dict[str, str]]:
    """One hour and a half of minutely samples shaped like the pipeline's push (job=autopilot)."""
    series = []
    for comp in ("api", "web"):
        lab = f'job="autopilot", target="default", component="{comp}"'
        series += [
            {"series": f"autopilot_uptime_percentage{{{lab}}}", "values": "99.5x90"},
            {"series": f"autopilot_degraded_percentage{{{lab}}}", "values": "2.5x90"},
            {"series": f"autopilot_health_checks_total{{{lab}}}", "values": "0+60x90"},
            {"series": f"autopilot_errors_total{{{lab}}}", "values": "0+2x90"},
            {"series": f"autopilot_health_score{{{lab}}}", "values": "87x90"},
            {"series": f'autopilot_anomalies_total{{{lab}, metric="response_time_ms"}}', "values": "0+1x90"},
            {"series": f'autopilot_failure_probability{{{lab}, metric="uptime"}}', "values": "0.2x90"},
        ]
        series += [
            {"series": f'autopilot_response_time_ms{{{lab}, stat="{stat}"}}', "values": f"{ms}x90"}
            for stat, ms in (("avg", 120), ("p95", 480), ("p99", 900))
        ]
    series += [
        {"series": f'autopilot_alerts_firing{{job="autopilot", severity="{sev}"}}', "values": "0x90"}
        for sev in ("info", "warning", "critical")
    ]
    for name, values in {
        "autopilot_migrations_total": "0+1x90",
        "autopilot_migrations_success_rate": "100x90",
        "autopilot_rollbacks_total": "0x90",
        "autopilot_migration_duration_ms": "1500x90",
        "autopilot_deployments_total": "0+1x90",
        "autopilot_deployment_success_rate": "100x90",
        "autopilot_last_success_timestamp_seconds": "0+60x90",
    }.items():
        series.append({"series": f'{name}{{job="autopilot"}}', "values": values})
    return series


@needs_promtool
def test_every_panel_query_returns_data_in_prometheus(dashboard: dict, tmp_path: Path) -> None:
    """Each query becomes a recording rule ``count(<query>)``; promtool checks every one has a sample."""
    queries = panel_queries(dashboard, {"target": ".*", "component": ".*"})
    rules = [
        {"record": "autopilot_panel_series", "expr": f"count({q})", "labels": {"panel": str(i)}}
        for i, q in enumerate(queries)
    ]
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    test = {
        "rule_files": ["panels.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _synthetic_series(),
                "promql_expr_test": [
                    {
                        "expr": "autopilot_panel_series > bool 0",
                        "eval_time": "80m",
                        "exp_samples": [
                            {"labels": f'{{panel="{i}"}}', "value": 1} for i in range(len(queries))
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "panels_test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", "panels.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "panels_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    legend = "\n".join(f"panel {i}: {q}" for i, q in enumerate(queries))
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{legend}"
