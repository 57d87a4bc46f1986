"""``autopilot backtest [--json] [--margin-hours 1] [--no-calibration] [--corpus DIR ...]
[--check-corpus DIR ...]``: score the AI-ops analytics against the demo's ground truth (``demo.incidents``),
causally, on the hourly health tables.

* anomaly detection over the whole span: incidents detected (an anomaly on the incident's component in an
  hour overlapping [start - margin, end + margin]) and false alarms per component-week (anomalous hours
  outside every incident window ± margin; consecutive hours count once);
* failure-risk lead time before each degradation's outage (hourly replays of the 24 h before it);
* forecast calibration: interval coverage (80 %/95 %) and the Brier score of the 24-hour crossing
  probability against climatology, replayed every 6 hours (``--no-calibration`` skips this slower part).

With ``--corpus DIR`` (a failure-series corpus written by ``bench/anomaly_corpus/failures.py``) it backtests the
24-hour failure risk instead, without a database: the calibration is fitted on the corpus' calibration split
(the pooled ones when ``--corpus`` is repeated) and reported on each held-out split (Brier skill vs
climatology for common and rare crossings, reliability by decile with a PNG diagram, 80 %/95 % interval
coverage at every horizon hour), and on the held-out split of every ``--check-corpus``, never fitted on;
see aiops/risk_backtest.py.

Run it after ``autopilot demo`` (or ``generate-demo-data`` and a health backfill). Figures from these runs
are in docs/AI_OPS_GUIDE.md; none of the methods was tuned to these labels.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import server


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="score anomaly detection and failure prediction against demo.incidents (ground truth)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--margin-hours", type=float, default=1.0, help="tolerance around each incident window (default 1)"
    )
    parser.add_argument("--no-calibration", action="store_true", help="skip the forecast calibration replay")
    parser.add_argument(
        "--corpus",
        type=Path,
        metavar="DIR",
        action="append",
        help="backtest the failure risk on a failure-series corpus instead; repeat to fit the calibration "
        "on the calibration splits of several corpora (each is reported on its held-out split)",
    )
    parser.add_argument(
        "--png",
        type=Path,
        default=Path("docs/img/failure_risk_reliability.png"),
        help="with --corpus: where to write the reliability diagram (default docs/img/failure_risk_reliability.png)",
    )
    parser.add_argument(
        "--step-hours", type=int, default=24, help="with --corpus: hours between origins (24)"
    )
    parser.add_argument("--workers", type=int, default=1, help="with --corpus: processes for the replay (1)")
    parser.add_argument(
        "--save-calibration",
        type=Path,
        metavar="FILE",
        help="with --corpus: write the fitted calibration (JSON)",
    )
    parser.add_argument(
        "--use-calibration",
        type=Path,
        metavar="FILE",
        help="with --corpus: report this risk calibration (e.g. the shipped one) instead of fitting one",
    )
    parser.add_argument(
        "--check-corpus",
        type=Path,
        metavar="DIR",
        action="append",
        help="with --corpus: also report the calibration on this corpus' held-out split, never fitting on it "
        "(e.g. one written with --variant c; repeatable); the saved calibration counts as meeting its "
        "targets only if every corpus does",
    )
    parser.set_defaults(handler=_backtest)


def _backtest(args: argparse.Namespace) -> int:
    if args.corpus is not None:
        return _corpus_backtest(args)
    import polars as pl

    from autopilot_pipeline.aiops import evaluation, store
    from autopilot_pipeline.aiops.detection import score_window
    from autopilot_pipeline.aiops.detector import DetectorConfig
    from autopilot_pipeline.aiops.insights import json_safe

    if args.margin_hours < 0:
        raise AutopilotError(f"--margin-hours must be >= 0, got {args.margin_hours:g}")
    with server.session(autocommit=True, migrated=True) as conn:
        incidents = store.read_incidents(conn)
        end = store.data_end(conn)
        if incidents.is_empty():
            raise AutopilotError(
                "demo.incidents is empty: the backtest needs ground truth (run `autopilot demo` first)"
            )
        if end is None:
            raise AutopilotError(
                "the hourly health tables are empty: materialize them first (`autopilot demo`)"
            )
        start = end - timedelta(days=3650)
        series = store.read_series(conn, start, end)
        counts = store.read_counts(conn, start, end)
    first = series["bucket_start"].min()
    scores = score_window(series, first, counts=counts)  # type: ignore[arg-type]
    scored_from = first + timedelta(hours=DetectorConfig().min_history)  # type: ignore[operator]
    detection = evaluation.detection_report(
        scores.filter(pl.col("is_anomaly")),
        incidents,
        span_start=scored_from,
        span_end=end,
        components=series["component"].n_unique(),
        margin=timedelta(hours=args.margin_hours),
    )
    leads = evaluation.failure_lead_times(series, incidents, scores=scores)
    calibration = None if args.no_calibration else evaluation.calibration_report(series, scores=scores)
    report = {
        "span": {"start": scored_from.isoformat(), "end": end.isoformat()},  # type: ignore[union-attr]
        "detection": detection.to_dict(),
        "leadTimes": [lt.to_dict() for lt in leads],
        "calibration": calibration.to_dict() if calibration else None,
    }
    if args.json:
        print(json.dumps(json_safe(report), indent=2))
        return 0
    d = detection
    print(
        f"Anomaly detection over {d.weeks:.2f} week(s) of {d.components} component(s) (margin {args.margin_hours:g} h):"
    )
    print(f"  incidents detected: {d.detected}/{d.incidents.height}")
    for r in d.incidents.iter_rows(named=True):
        mark = "✓" if r["detected"] else "✗"
        first_hit = (
            f"first anomaly {r['first_anomaly']:%m-%d %H:%M} ({r['metrics']})" if r["detected"] else "missed"
        )
        print(
            f"    {mark} {r['kind']:<13} {r['component']:<14} {r['started_at']:%Y-%m-%d %H:%M}  {first_hit}"
        )
    print(
        f"  false alarms: {d.false_alarms} ({d.false_alarm_hours} hours) = "
        f"{d.false_alarms_per_component_week:.2f} per component-week (target <= 1)"
    )
    print("Failure risk before degradations (risk >= 0.5 before the outage):")
    for lt in leads:
        if lt.failure_at is None:
            print(f"  {lt.component}: no outage hour found in the incident window")
        else:
            lead = f"{lt.lead_hours:g} h ahead" if lt.lead_hours is not None else "not predicted"
            print(f"  {lt.component}: outage hour {lt.failure_at:%Y-%m-%d %H:%M}, {lead}")
    if not leads:
        print("  no degradation incident in the data")
    if calibration:
        c = calibration
        print(
            f"Forecast calibration ({c.predictions} predictions at {c.origins} origins, every 6 h): "
            f"coverage {c.coverage_80:.1%} (80 % nominal), {c.coverage_95:.1%} (95 % nominal); "
            f"Brier {c.brier:.4f} vs climatology {c.brier_climatology:.4f} (skill {c.brier_skill:+.2f}); "
            f"warnings >= 0.5: {c.warned_events} before a crossing, {c.false_warnings} false"
        )
    return 0


def _corpus_backtest(args: argparse.Namespace) -> int:
    """``--corpus DIR [--corpus DIR ...]``: the failure-risk backtest (no database)."""
    from autopilot_pipeline.aiops import risk, risk_backtest, risk_report
    from autopilot_pipeline.aiops.insights import json_safe

    for d in args.corpus:
        if not d.is_dir():
            raise AutopilotError(f"--corpus {d}: not a directory")
    if args.step_hours < 1 or args.workers < 1:
        raise AutopilotError("--step-hours and --workers must be >= 1")
    if args.use_calibration and not args.use_calibration.is_file():
        raise AutopilotError(f"--use-calibration {args.use_calibration}: no such file")
    kw = {"step_hours": args.step_hours, "workers": args.workers}
    fitted: list[tuple[Path, list[dict], list]] = []
    for d in args.corpus:
        try:
            # nothing is fitted with --use-calibration: the calibration split is not even read
            corpus = risk_backtest.load_corpus(d, "heldout" if args.use_calibration else None)
            fitted.append((d, corpus, risk_backtest.replay_corpus(corpus, **kw)))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise AutopilotError(f"--corpus {d}: {exc}") from exc
    try:
        if args.use_calibration:
            cal = risk.load_calibration(args.use_calibration)
        else:
            names = ", ".join(d.name for d, _, _ in fitted)
            cal = risk_backtest.fit_corpora(
                [(c, r) for _, c, r in fitted], fitted_on=f"calibration splits of {names}"
            )
        reports = [
            (
                str(d),
                risk_backtest.corpus_backtest(
                    c, replays=r, calibration=cal, fitted_here=not args.use_calibration
                ),
            )
            for d, c, r in fitted
        ]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise AutopilotError(f"--corpus {args.corpus[0]}: {exc}") from exc
    for d in args.check_corpus or []:
        try:
            # only the held-out split is reported: the calibration split is not even replayed
            held = risk_backtest.load_corpus(d, "heldout")
            check = risk_backtest.corpus_backtest(held, calibration=cal, fitted_here=False, **kw)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise AutopilotError(f"--check-corpus {d}: {exc}") from exc
        reports.append((str(d), check))
    report = reports[0][1]
    if len(reports) > 1:
        report = risk_backtest.with_checks(report, reports[1:])
    png = risk_backtest.reliability_png(report, args.png)
    if args.save_calibration:
        args.save_calibration.write_text(json.dumps(report.calibration.to_dict(), indent=1) + "\n")
    summary = {**report.summary, "corpus": str(args.corpus[0]), "reliabilityPng": str(png)}
    if args.json:
        print(json.dumps(json_safe({"failureRisk": summary}), indent=2))
    else:
        print(risk_report.render(summary, str(png), str(args.save_calibration or "") or None))
        for other in summary.get("otherCorpora", []):
            print(risk_report.render(other))
    return 0
