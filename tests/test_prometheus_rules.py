"""prometheus/: the alert rules pass promtool's checks and unit tests, and match the SQL default rules."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from autopilot_pipeline.settings import PROJECT_ROOT

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus); CI installs it"
)
PROM_DIR = PROJECT_ROOT / "prometheus"
PROMQL_OP = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "==", "!=": "!="}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, cwd=PROM_DIR, timeout=120, check=False
    )


@needs_promtool
@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
        ("check", "config", "prometheus.yml"),
    ],
    ids=["check-rules", "test-rules", "check-config"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    done = promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr


def _alert_rules() -> dict[str, dict]:
    groups = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


def _sql_default_rules() -> dict[str, tuple[str, float, int, str]]:
    """name -> (condition, threshold, duration_minutes, severity) from the INSERT in 0003_alerting.sql."""
    text = (PROJECT_ROOT / "sql" / "0003_alerting.sql").read_text()
    row = re.compile(r"\(\s*'([^']+)',\s*'[^']*',\s*'[^']+',\s*'([^']+)',\s*([\d.]+),\s*(\d+),\s*'(\w+)',")
    return {m[1]: (m[2], float(m[3]), int(m[4]), m[5]) for m in row.finditer(text)}


def test_default_rules_mirror_the_sql_table() -> None:
    sql_rules = _sql_default_rules()
    assert len(sql_rules) == 6
    by_rule_label = {r["labels"]["rule"]: r for r in _alert_rules().values() if "rule" in r.get("labels", {})}
    assert set(by_rule_label) == set(sql_rules)
    for name, (condition, threshold, minutes, severity) in sql_rules.items():
        rule = by_rule_label[name]
        assert rule["for"] == f"{minutes}m", name
        assert rule["labels"]["severity"] == severity, name
        if name == "Migration Failure":
            # "failures > 0" has no failures series among the seed's metrics: a success rate below 100%.
            assert rule["expr"] == "autopilot_migrations_success_rate < 100"
            continue
        op, value = re.search(r"(<=|>=|==|!=|<|>)\s*([\d.]+)\s*$", rule["expr"]).groups()  # type: ignore[union-attr]
        assert (op, float(value)) == (PROMQL_OP[condition], threshold), name


def test_seed_examples_are_present_verbatim() -> None:
    exprs = {r["expr"] for r in _alert_rules().values()}
    assert "rate(autopilot_errors_total[5m]) > 0.1" in exprs
    assert "autopilot_uptime_percentage < 95" in exprs


def test_rules_use_stat_label_for_response_time() -> None:
    for rule in _alert_rules().values():
        if "autopilot_response_time_ms" in rule["expr"]:
            assert 'stat="p95"' in rule["expr"] and "quantile" not in rule["expr"]
