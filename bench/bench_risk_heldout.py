"""Refit the failure-risk calibration and judge it on new held-out series, beside another calibration.

    python bench/anomaly_corpus/failures.py --out /tmp/fc5_fit_base --per-set 16
    python bench/anomaly_corpus/failures.py --out /tmp/fc5_fit_b --per-set 16 --variant b
    python bench/anomaly_corpus/failures.py --out /tmp/fc5_fit_d --per-set 16 --variant d
    python bench/anomaly_corpus/failures.py --out /tmp/fc5_held_base --per-set 32 --first-index 48
    (the same for --variant b, d and c)
    python bench/bench_risk_heldout.py --fit /tmp/fc5_fit_base --fit /tmp/fc5_fit_b --fit /tmp/fc5_fit_d \\
        --heldout /tmp/fc5_held_base --heldout /tmp/fc5_held_b --heldout /tmp/fc5_held_d \\
        --heldout /tmp/fc5_held_c --compare autopilot_pipeline/aiops/risk_calibration.json \\
        --workers 2 --cache-dir /tmp/fc5_replays [--save-calibration FILE] [--png FILE]

What ``autopilot backtest --corpus A --corpus B --check-corpus C`` does, with two differences that make a
large measurement affordable: only the ``--fit`` corpora's calibration splits and the ``--heldout`` corpora's
held-out splits are replayed (each once, cached), and the same replays report a second calibration
(``--compare``, e.g. the shipped one) side by side. The refit calibration is
:func:`risk_backtest.fit_corpora` (each corpus counts equally); its ``targetsMet`` holds only if every target
holds on every held-out corpus (:func:`risk_backtest.with_checks`), as in the CLI.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from risk_replays import split_replays  # noqa: E402

from autopilot_pipeline.aiops import risk, risk_backtest  # noqa: E402
from autopilot_pipeline.aiops.risk_backtest import CorpusReport  # noqa: E402


def _judge(cal: risk.Calibration, held: list[tuple[str, list, list]]) -> CorpusReport:
    reports = [
        (name, risk_backtest.corpus_backtest(c, replays=r, calibration=cal, fitted_here=False))
        for name, c, r in held
    ]
    return risk_backtest.with_checks(reports[0][1], reports[1:])


def _row(summary: dict) -> dict:
    h = summary["heldout"]
    return {
        "skillCommon": round(h.get("common", {}).get("brierSkill", float("nan")), 3),
        "skillRare": round(h.get("rare", {}).get("brierSkill", float("nan")), 3),
        "worstDecileGap": round(100 * h["worstDecileGap"], 1),
        "worstDecileGapSE": round(100 * h["worstDecileGapSE"], 1),
        "worstDecile": h["worstDecile"],
        "coverage80": [min(h["coverage80ByHour"]), max(h["coverage80ByHour"])],
        "coverage95": [min(h["coverage95ByHour"]), max(h["coverage95ByHour"])],
        "deciles": {  # decile: [gap, standard error (series as clusters), forecasts], points
            r["decile"]: [round(100 * r["gap"], 1), round(100 * r["gapSE"], 1), r["n"]]
            for r in h["all"]["reliability"]
        },
        "targets": summary["targets"],
    }


def _table(name: str, report: CorpusReport, corpora: list[str]) -> dict:
    rows = [report.summary] + report.summary.get("otherCorpora", [])
    out = {"calibration": name, "targetsMet": report.summary["targetsMet"], "corpora": {}}
    for corpus, summary in zip(corpora, rows, strict=True):
        out["corpora"][corpus] = _row(summary)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fit", type=Path, action="append", required=True, help="corpus fitted on (calibration split)"
    )
    parser.add_argument(
        "--heldout", type=Path, action="append", required=True, help="corpus judged on (held-out split)"
    )
    parser.add_argument("--compare", type=Path, help="another calibration reported on the same replays")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, help="pickles of the replays (reused)")
    parser.add_argument("--save-calibration", type=Path, help="write the refit calibration (JSON)")
    parser.add_argument(
        "--png", type=Path, help="reliability diagram of the refit on the first --heldout corpus"
    )
    parser.add_argument("--json", type=Path, help="write the comparison (JSON)")
    args = parser.parse_args()
    fit = [split_replays(d, "calibration", args.workers, args.cache_dir) for d in args.fit]
    held = [(str(d), *split_replays(d, "heldout", args.workers, args.cache_dir)) for d in args.heldout]
    names = ", ".join(d.name for d in args.fit)
    refit = risk_backtest.fit_corpora(
        fit, fitted_on=f"calibration splits of {names} (each corpus weighted equally)"
    )
    corpora = [d.name for d in args.heldout]
    judged = _judge(refit, held)
    result = [_table("refit", judged, corpora)]
    if args.compare:
        result.append(_table(str(args.compare), _judge(risk.load_calibration(args.compare), held), corpora))
    if args.save_calibration:
        args.save_calibration.write_text(json.dumps(judged.calibration.to_dict(), indent=1) + "\n")
    if args.png:
        risk_backtest.reliability_png(judged, args.png)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
