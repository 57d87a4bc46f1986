"""Differential test: our alert state machine against Prometheus's own rule evaluator (``promtool``).

For seeded random series and rules (every condition; ``for``; ``keep_firing_for``; hysteresis; gaps; NaN)
we replay each series through :func:`timeline` and write what *our* engine says into a promtool test
file: the firing instances at every evaluation (``alert_rule_test``) and the pending ones (``ALERTS``
series via ``promql_expr_test``). ``promtool test rules`` then evaluates the equivalent PromQL rules and
fails on any difference, so a pass means identical pending/firing timelines.

Equivalences used (promtool evaluates every ``evaluation_interval`` = 1m, samples every 1m, so the
evaluation at minute i sees sample i):
- our "no data" (policy ``ok``) is a ``stale`` sample: the series is absent at that evaluation;
- a recovery threshold is the usual PromQL hysteresis idiom
  ``(m OP thr) or (m OP rec and on(...) ALERTS{alertstate="firing"})``, where ``ALERTS`` holds the
  state left by the previous evaluation - exactly what our engine consults.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from autopilot_pipeline.alerting.state_machine import AlertState, Rule, timeline

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus); CI installs it"
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # promtool's evaluation times start at the Unix epoch
STEPS = 30
COMPONENTS = ("api", "db", "web")
PROMQL_OP = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "==", "!=": "!="}


@dataclass(frozen=True)
class Case:
    name: str
    rule: Rule
    series: dict[str, list[float | None]]

    def expr(self) -> str:
        sel = f'm{{case="{self.name}"}}'
        op = PROMQL_OP[self.rule.condition.value]
        main = f"({sel} {op} {_num(self.rule.threshold)})"
        if self.rule.recovery_threshold is None:
            return main
        held = f'ALERTS{{alertname="{self.name}", alertstate="firing"}}'
        return f"{main} or ({sel} {op} {_num(self.rule.recovery_threshold)} and on(case, component) {held})"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _sample(x: float | None) -> str:
    if x is None:
        return "stale"
    return "NaN" if x != x else _num(x)


def random_case(rng: random.Random, name: str) -> Case:
    cond = rng.choice(list(PROMQL_OP))
    thr = float(rng.randint(2, 8))
    rec = None
    if cond in ("<", "<=", ">", ">=") and rng.random() < 0.35:
        rec = thr + rng.choice([1, 2, 3]) * (1 if cond.startswith("<") else -1)
    rule = Rule(
        cond,  # type: ignore[arg-type]
        thr,
        timedelta(minutes=rng.choice([0, 0, 1, 2, 3, 5])),
        rec,
        timedelta(minutes=rng.choice([0, 0, 0, 1, 2, 4])),
    )
    series: dict[str, list[float | None]] = {}
    for comp in COMPONENTS:
        level, values = rng.randint(0, 10), []
        for _ in range(STEPS):
            # A random walk with jumps, so conditions hold for runs of varying length.
            jump = rng.random() < 0.15
            level = rng.randint(0, 10) if jump else min(10, max(0, level + rng.choice([-1, 0, 1])))
            roll = rng.random()
            values.append(None if roll < 0.06 else float("nan") if roll < 0.08 else float(level))
        series[comp] = values
    return Case(name, rule, series)


def expectations(case: Case) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Per evaluation minute: components our engine has firing, and those pending."""
    firing: dict[int, list[str]] = {i: [] for i in range(STEPS)}
    pending: dict[int, list[str]] = {i: [] for i in range(STEPS)}
    for comp, values in case.series.items():
        steps = timeline(((EPOCH + timedelta(minutes=i), v) for i, v in enumerate(values)), case.rule)
        for i, s in enumerate(steps):
            if s.state is AlertState.FIRING:
                firing[i].append(comp)
            elif s.state is AlertState.PENDING:
                pending[i].append(comp)
    return firing, pending


def write_suite(directory: Path, stem: str, cases: list[Case]) -> Path:
    """A rule file plus a promtool test file whose expectations come from our engine."""
    rules = []
    for c in cases:
        r: dict = {"alert": c.name, "expr": c.expr(), "for": f"{c.rule.duration // timedelta(minutes=1)}m"}
        if c.rule.keep_firing_for:
            r["keep_firing_for"] = f"{c.rule.keep_firing_for // timedelta(minutes=1)}m"
        rules.append(r)
    (directory / f"{stem}_rules.yml").write_text(yaml.safe_dump({"groups": [{"name": stem, "rules": rules}]}))

    input_series, alert_tests = [], []
    pending_at: dict[int, list[dict]] = {i: [] for i in range(STEPS)}
    for c in cases:
        for comp, values in c.series.items():
            input_series.append(
                {
                    "series": f'm{{case="{c.name}", component="{comp}"}}',
                    "values": " ".join(_sample(v) for v in values),
                }
            )
        firing, pending = expectations(c)
        for i in range(STEPS):
            alert_tests.append(
                {
                    "eval_time": f"{i}m",
                    "alertname": c.name,
                    "exp_alerts": [{"exp_labels": {"case": c.name, "component": comp}} for comp in firing[i]],
                }
            )
            pending_at[i] += [
                {
                    "labels": f'ALERTS{{alertname="{c.name}", alertstate="pending", case="{c.name}", '
                    f'component="{comp}"}}',
                    "value": 1,
                }
                for comp in pending[i]
            ]
    expr_tests = [
        {"expr": 'ALERTS{alertstate="pending"}', "eval_time": f"{i}m", "exp_samples": pending_at[i]}
        for i in range(STEPS)
    ]
    test = {
        "rule_files": [f"{stem}_rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "alert_rule_test": alert_tests,
                "promql_expr_test": expr_tests,
            }
        ],
    }
    path = directory / f"{stem}_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return path


def promtool_test(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, "test", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_engine_matches_prometheus_on_random_series(tmp_path: Path) -> None:
    rng = random.Random(5_2026)
    files = []
    for f in range(3):
        cases = [random_case(rng, f"C{f}_{k}") for k in range(80)]
        files.append(write_suite(tmp_path, f"suite{f}", cases))
    done = promtool_test(*files)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert done.stdout.count("SUCCESS") == len(files)


def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """Guard against a vacuous pass: corrupting one firing or one pending expectation must fail."""
    case = Case("W", Rule(">", 5, timedelta(minutes=2)), {c: [9.0] * STEPS for c in COMPONENTS})
    path = write_suite(tmp_path, "wrong", [case])
    assert promtool_test(path).returncode == 0
    spec = yaml.safe_load(path.read_text())

    firing = yaml.safe_load(path.read_text())
    spurious = [{"exp_labels": {"case": "W", "component": "api"}}]
    firing["tests"][0]["alert_rule_test"][1]["exp_alerts"] = spurious  # minute 1 is only pending
    path.write_text(yaml.safe_dump(firing, sort_keys=False))
    bad = promtool_test(path)
    assert bad.returncode == 1 and "FAILED" in bad.stdout + bad.stderr

    spec["tests"][0]["promql_expr_test"][1]["exp_samples"] = []  # pending at minute 1: claim it is not
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    bad = promtool_test(path)
    assert bad.returncode == 1 and "FAILED" in bad.stdout + bad.stderr
