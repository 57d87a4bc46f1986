"""Text of the failure-risk corpus backtest (``autopilot backtest --corpus DIR``). Pure.

Until every target holds on the held-out split, the text calls the number a "risk score", not a
probability (issue 14)."""

from __future__ import annotations

import math


def risk_name(p: dict) -> str:
    """What a failure prediction's number is called: "probability" only when the shipped calibration met
    every failure-risk target on the held-out corpus (``riskName``/``calibrated``, aiops/risk.py)."""
    calibrated = p.get("riskName") == "probability" or p.get("calibrated") is True
    return "probability" if calibrated else "risk score"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %" if math.isfinite(x) else "n/a"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def render(summary: dict, png: str | None = None, saved: str | None = None) -> str:
    """The readable report of :func:`risk_backtest.corpus_backtest`'s summary."""
    from autopilot_pipeline.aiops import risk_backtest

    s = summary
    name, held, checks = s["scoreName"], s["heldout"], s["targets"]
    fitted_on = s.get("calibration", {}).get("fittedOn") or "the calibration split"
    source = (
        f"calibration fitted on {fitted_on}, among them this corpus' {s['series']['calibration']} other series"
        if s.get("calibrationFitted", True)
        else f"calibration not fitted on this corpus ({fitted_on})"
    )
    where = f" {s['corpus']}" if s.get("corpus") else ""
    lines = [
        f"Failure {name} (24 h) on the held-out split of corpus{where}: {s['series']['heldout']} series, "
        f"{held['all']['predictions']} forecasts ({source})"
    ]
    for kind, target in risk_backtest.TARGET_SKILL.items():
        if kind not in held:
            continue
        v = held[kind]
        lines.append(
            f"  {kind} crossings (base rate {_pct(v['baseRate'])}): Brier {v['brier']:.4f} vs climatology "
            f"{v['brierClimatology']:.4f}, skill {v['brierSkill']:+.3f} (target > {target}) "
            f"{_mark(checks.get('brierSkill_' + kind, False))}; uncalibrated skill {v['brierSkillUncalibrated']:+.3f}"
        )
    lines.append(
        f"  reliability by decile of the stated {name} (worst gap {100 * held['worstDecileGap']:.1f} points, "
        f"target <= 5 where n >= {risk_backtest.MIN_DECILE}) {_mark(checks['reliability'])}"
    )
    for r in held["all"]["reliability"]:
        se = r.get("gapSE", math.nan)
        lines.append(
            f"    {r['decile']}  n={r['n']:<5} stated {_pct(r['statedRisk']):>7}  observed {_pct(r['observed']):>7}"
            f"  gap {100 * (r['observed'] - r['statedRisk']):+5.1f} ± {100 * se:.1f} (s.e., by series)"
        )
    within = held.get("worstDecileWithinSet") or {}
    if within:
        parts = ", ".join(
            f"{k} {100 * w['gap']:+.1f} ± {100 * w['gapSE']:.1f} ({w['decile']})" for k, w in within.items()
        )
        lines.append(
            f"  worst decile gap within a set (not a target; the mix is what the target reads): {parts}"
        )
    for level, key in ((80, "coverage80"), (95, "coverage95")):
        cov = held[f"{key}ByHour"]
        lines.append(
            f"  {level} % interval coverage by horizon hour: min {_pct(min(cov))} (h{cov.index(min(cov)) + 1}), "
            f"max {_pct(max(cov))} (h{cov.index(max(cov)) + 1}), target {level} ± 2 points {_mark(checks[key])}"
        )
    if png:
        lines.append(f"  reliability diagram: {png}")
    if saved:
        lines.append(f"  calibration written to {saved}")
    if "otherCorpora" in s:
        others = "; ".join(
            f"{o['corpus']}: {'met' if o['targetsMet'] else 'not met'}" for o in s["otherCorpora"]
        )
        lines.append(
            f"  targets on this corpus: {'met' if s['targetsMetHere'] else 'not met'}; on the others "
            f"(below): {others}"
        )
    lines.append(f"All targets met: {'yes' if s['targetsMet'] else 'no'} (the output says '{name}')")
    return "\n".join(lines)
