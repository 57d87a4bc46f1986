"""``autopilot analyze TASK [--json] [--as-of TIME] [--save] [--target NAME]``: the seed's AI-ops tasks.

Tasks: detect_anomalies, predict_failures, analyze_trends, generate_insights, optimize_system. Each runs
the same code as the Dagster assets at one analysis time (default: the current hour, or the end of the
data when it stops earlier) on the hourly health tables, so materialize the health tables first (``autopilot
demo`` does). ``--json`` prints ``{"task", "asOf", "result"}`` with ``result`` in the seed's shape (the
edge function's answer); otherwise a readable summary. Nothing is written unless ``--save`` (then the
results replace the rows of that analysis time, as the assets do). The LLM narrative of generate_insights
uses OPENAI_API_KEY / OPENAI_BASE_URL / AUTOPILOT_OPENAI_MODEL when set (answers are cached in Postgres).
Failure "probabilities" are risk scores until the failure-risk targets hold: see docs/AI_OPS_GUIDE.md.
``--target NAME`` analyses that monitored target's rows (default: ``default``, the configured database);
its release logs, which the insights read, come from the target's own database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from datetime import datetime
from typing import Any

import psycopg

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.integrations.openai_chat import LLMSettings
from autopilot_pipeline.postgres import server, targets
from autopilot_pipeline.tasks import TASKS

_SHOWN = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="AI-ops tasks: detect_anomalies, predict_failures, analyze_trends, generate_insights, optimize_system",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", choices=TASKS, metavar="TASK", help=", ".join(TASKS))
    parser.add_argument("--json", action="store_true", help="print the seed's JSON ({task, asOf, result})")
    parser.add_argument(
        "--as-of", default=None, help="analysis time, ISO 8601 with a zone (default: the current hour)"
    )
    parser.add_argument("--save", action="store_true", help="write the results to the analytics tables")
    parser.add_argument(
        "--target",
        default=targets.DEFAULT,
        help="the monitored target to analyse (default: default, the configured database)",
    )
    parser.set_defaults(handler=_analyze)


def _parse_as_of(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AutopilotError(
            f"--as-of {text!r} is not an ISO 8601 time (e.g. 2026-03-04T15:00:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        raise AutopilotError(f"--as-of {text!r} has no time zone (e.g. 2026-03-04T15:00:00+00:00)")
    return moment


# ------------------------------------------------------------------------------------------------ output


def _fmt(value: Any, spec: str = ".4g") -> str:
    return "–" if value is None else format(value, spec)


def _print_anomalies(result: list[dict], as_of: datetime) -> None:
    print(f"{len(result)} anomalies in the 7 days before {as_of:%Y-%m-%d %H:%M} UTC (most confident first)")
    for a in result[:_SHOWN]:
        stamp = datetime.fromisoformat(a["timestamp"])
        print(
            f"  {stamp:%Y-%m-%d %H:%M}  {a['component']:<14} {a['metric']:<18} {a['severity']:<8} "
            f"{a['confidence']:.2f}  {a['reason']}"
        )
    if len(result) > _SHOWN:
        print(f"  … and {len(result) - _SHOWN} more (--json for all)")


def _print_predictions(result: list[dict], as_of: datetime) -> None:
    name = "probabilities" if result and result[0].get("riskName") == "probability" else "risk scores"
    print(
        f"Failure {name} for the 24 hours after {as_of:%Y-%m-%d %H:%M} UTC "
        "(see docs/AI_OPS_GUIDE.md, 'Failure risk'):"
    )
    if not result:
        print("  no series with a failure threshold and enough history")
    for p in result[:_SHOWN]:
        print(
            f"  {p['probability']:.2f}  {p['component']:<14} {p['metric']:<18} {p['prediction']} "
            f"(now {_fmt(p['lastValue'])}, threshold {p['direction']} {_fmt(p['threshold'], 'g')})"
        )
        for r in p["recommendations"]:
            print(f"        - {r}")
    if len(result) > _SHOWN:
        print(f"  … and {len(result) - _SHOWN} more (--json for all)")


def _print_trends(result: list[dict], as_of: datetime) -> None:
    moving = [t for t in result if t["trend"] != "stable"]
    series = len({(t["component"], t["metric"]) for t in result})
    windows = sorted({t["windowHours"] for t in result})
    print(
        f"Trends of {series} series over {', '.join(f'{w} h' for w in windows) or 'no window'} before "
        f"{as_of:%Y-%m-%d %H:%M} UTC: {len(moving)} significant"
    )
    for t in moving:
        print(
            f"  {t['trend']:<9} {t['component']:<14} {t['metric']:<18} over {t['windowHours']:>3} h: "
            f"{t['slopePerDay']:+.4g}/day (95 % CI {t['slopeCI95'][0] * 24:+.4g}..{t['slopeCI95'][1] * 24:+.4g}), "
            f"p = {t['pValue']:.2g}, R² = {t['rSquared']:.2f}, {t['dataPoints']} points"
        )
    if not moving:
        print("  no significant trend (stable everywhere)")


def _print_insights(result: dict, llm: Any) -> None:
    print(f"Health: {result['health']}")
    print(result["summary"])
    mig = result["migrations"]
    print(f"Migrations: {mig['total']} total, {mig['failed']} failed, success rate {mig['successRate']}")
    print("Recommendations:")
    for r in result["recommendations"]:
        print(f"  - {r}")
    if result.get("aiAnalysis"):
        cached = " (cached)" if llm.status == "cached" else ""
        print(f"\nAI analysis{cached}: {result['aiAnalysis']}")
    elif llm.status == "failed":
        print(f"\nAI analysis unavailable: {llm.error}")
    else:
        print("\nAI analysis: not configured (set OPENAI_API_KEY)")


def _print_optimizations(result: dict) -> None:
    print(f"{result['totalOptimizations']} optimization(s): {result['estimatedImpact']}")
    for o in result["optimizations"]:
        print(f"\n[{o['priority']}] {o['type']}: {o['description']}")
        print(f"  action: {o['action']}")
        print(f"  impact: {o['impact']}")


def _analyze(args: argparse.Namespace) -> int:
    from autopilot_pipeline.aiops.insights import json_safe
    from autopilot_pipeline.aiops.pipeline import resolve_as_of
    from autopilot_pipeline.tasks import compute

    requested = _parse_as_of(args.as_of)
    name = targets.validate_name(args.target)
    with server.session(autocommit=True, migrated=True) as conn:
        target = targets.get_target(conn, name)
        as_of = resolve_as_of(conn, requested, target=name)
        with contextlib.ExitStack() as stack:
            source = None  # the insights read the release logs in the target's own database
            if name != targets.DEFAULT and args.task == "generate_insights":
                source = stack.enter_context(targets.connect_target(target))
            try:
                answer = compute(
                    conn,
                    args.task,
                    as_of,
                    args.save,
                    LLMSettings.from_env(os.environ),
                    target=name,
                    source=source,
                )
            except psycopg.Error as exc:
                raise AutopilotError(f"{args.task} failed: {' '.join(str(exc).split())}") from exc
    result, llm = answer.result, answer.llm
    if args.json:
        payload = {"task": args.task, "asOf": as_of.isoformat(), "result": result}
        if name != targets.DEFAULT:
            payload["target"] = name  # the seed's shape unchanged for the default target
        print(json.dumps(json_safe(payload), indent=2))
        return 0
    if name != targets.DEFAULT:
        print(f"target {name}")
    if args.task == "detect_anomalies":
        _print_anomalies(result, as_of)
    elif args.task == "predict_failures":
        _print_predictions(result, as_of)
    elif args.task == "analyze_trends":
        _print_trends(result, as_of)
    elif args.task == "generate_insights":
        _print_insights(result, llm)
    else:
        _print_optimizations(result)
    if args.save:
        print(f"\nsaved to the analytics tables (analysis time {as_of.isoformat()})")
    return 0
