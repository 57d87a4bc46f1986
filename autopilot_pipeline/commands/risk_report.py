"""``autopilot backtest --corpus DIR``: the failure-risk backtest on a failure-series corpus, as text or JSON.

Until every target holds on the held-out split, the output calls the number a "risk score", not a
probability (issue 14)."""

from __future__ import annotations

import argparse
import json
import math

from autopilot_pipeline.errors import AutopilotError


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %" if math.isfinite(x) else "n/a"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def corpus_backtest_command(args: argparse.Namespace) -> int:
    from autopilot_pipeline.aiops import risk_backtest
    from autopilot_pipeline.core.insights import json_safe

    if not args.corpus.is_dir():
        raise AutopilotError(f"--corpus {args.corpus}: not a directory")
    if args.step_hours < 1 or args.workers < 1:
        raise AutopilotError("--step-hours and --workers must be >= 1")
    try:
        corpus = risk_backtest.load_corpus(args.corpus)
        report = risk_backtest.corpus_backtest(corpus, step_hours=args.step_hours, workers=args.workers)
    except (ValueError, KeyError, OSError) as exc:
        raise AutopilotError(f"--corpus {args.corpus}: {exc}") from exc
    png = risk_backtest.reliability_png(report, args.png)
    if args.save_calibration:
        args.save_calibration.write_text(json.dumps(report.calibration.to_dict(), indent=1) + "\n")
    s = report.summary
    s["reliabilityPng"] = str(png)
    if args.json:
        print(json.dumps(json_safe({"failureRisk": s}), indent=2))
        return 0
    name, held, checks = s["scoreName"], s["heldout"], s["targets"]
    print(
        f"Failure {name} (24 h) on the held-out corpus: {s['series']['heldout']} series, "
        f"{held['all']['predictions']} forecasts (calibration fitted on {s['series']['calibration']} other series)"
    )
    for kind, target in risk_backtest.TARGET_SKILL.items():
        if kind not in held:
            continue
        v = held[kind]
        print(
            f"  {kind} crossings (base rate {_pct(v['baseRate'])}): Brier {v['brier']:.4f} vs climatology "
            f"{v['brierClimatology']:.4f}, skill {v['brierSkill']:+.3f} (target > {target}) "
            f"{_mark(checks.get('brierSkill_' + kind, False))}; uncalibrated skill {v['brierSkillUncalibrated']:+.3f}"
        )
    print(
        f"  reliability by decile of the stated {name} (worst gap {100 * held['worstDecileGap']:.1f} points, "
        f"target <= 5 where n >= {risk_backtest.MIN_DECILE}) {_mark(checks['reliability'])}"
    )
    for r in held["all"]["reliability"]:
        print(
            f"    {r['decile']}  n={r['n']:<5} stated {_pct(r['statedRisk']):>7}  observed {_pct(r['observed']):>7}"
        )
    for level, key in ((80, "coverage80"), (95, "coverage95")):
        cov = held[f"{key}ByHour"]
        print(
            f"  {level} % interval coverage by horizon hour: min {_pct(min(cov))} (h{cov.index(min(cov)) + 1}), "
            f"max {_pct(max(cov))} (h{cov.index(max(cov)) + 1}), target {level} ± 2 points {_mark(checks[key])}"
        )
    print(f"  reliability diagram: {png}")
    if args.save_calibration:
        print(f"  calibration written to {args.save_calibration}")
    print(f"All targets met: {'yes' if s['targetsMet'] else 'no'} (the output says '{name}')")
    return 0
