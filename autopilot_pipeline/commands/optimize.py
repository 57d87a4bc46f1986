"""``autopilot optimize [--json] [--dry-run | --apply] [--target NAME]``: the seed's ``optimize_system`` task.

Re-reads query and table statistics, re-plans the heaviest queries (verifying index advice with HypoPG
when it is installed), refreshes ``automation.performance_recommendations`` and prints the optimizations.
``--dry-run`` records what auto-remediation would do; ``--apply`` builds the high-priority, planner-verified
indexes with CREATE INDEX CONCURRENTLY. Both are written to ``automation.remediation_audit``.
``--target NAME`` does all of it in that monitored target's database (indexes are built only there) and
stores its recommendations here under its name, as its profiling run does.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
from typing import Any

import psycopg

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import migrate, server, targets
from autopilot_pipeline.profiling.savings import savings_lines
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.recommendations import optimize_system
from autopilot_pipeline.profiling.store.remediation import remediate
from autopilot_pipeline.profiling.store.targets import copy_recommendations

__all__ = ["optimize_system", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "optimize",
        help="optimization recommendations (indexes, vacuum, scaling); optionally apply verified indexes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the optimize_system JSON")
    parser.add_argument(
        "--target",
        default=targets.DEFAULT,
        help="the monitored target to optimize (default: default, the configured database)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="record and show what --apply would do")
    mode.add_argument(
        "--apply",
        action="store_true",
        help="build high-priority, HypoPG-verified indexes (CREATE INDEX CONCURRENTLY)",
    )
    defaults = ProfilingSettings()
    parser.add_argument(
        "--lookback-hours",
        type=float,
        default=defaults.lookback_hours,
        help=f"query_performance window to analyze (default {defaults.lookback_hours:g})",
    )
    parser.add_argument(
        "--min-mean-ms",
        type=float,
        default=defaults.min_mean_ms,
        help=f"skip query shapes faster than this on average (default {defaults.min_mean_ms:g})",
    )
    parser.set_defaults(handler=_optimize)


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _print_report(report: dict[str, Any]) -> None:
    _print_report_items(report)
    savings = report.get("realizedSavings") or []
    if savings:
        print("\napplied indexes, predicted vs realized saving (pg_stat_statements before/after):")
        for line in savings_lines(savings):
            print(f"  - {line}")


def _print_report_items(report: dict[str, Any]) -> None:
    if not report["optimizations"]:
        print(report["estimatedImpact"])
        return
    print(f"{report['totalOptimizations']} optimization(s): {report['estimatedImpact']}")
    for opt in report["optimizations"]:
        print(f"\n[{opt['priority']}] {opt['type']}: {opt['description']}")
        print(f"  action: {opt['action']}")
        print(f"  impact: {opt['impact']}")
        for item in opt["items"][:10]:
            print(f"  - ({item['priority']}) {item['description']}")
            if item.get("actionSql"):
                print(f"      {item['actionSql']}")
            for line in _index_lines(item):
                print(f"      {line}")
        if len(opt["items"]) > 10:
            print(f"  … and {len(opt['items']) - 10} more (automation.performance_recommendations)")


def _bytes(n: float) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n / 1024:.0f} kB"


def _index_lines(item: dict[str, Any]) -> list[str]:
    """The structured details of an index recommendation, one short line each."""
    lines = []
    if item.get("queries"):
        shown = "; ".join(q["query"][:70] for q in item["queries"][:3])
        lines.append(f"serves {len(item['queries'])} query shape(s): {shown}")
    if item.get("estimatedSavedMs") is not None:
        lines.append(
            f"predicted saving: {item['estimatedSavedMs'] / 1000:.1f} s per window (calls x time saved)"
        )
    if item.get("estimatedSizeBytes"):
        lines.append(
            f"estimated size: {_bytes(item['estimatedSizeBytes'])}; "
            f"index writes/day: {item.get('indexWritesPerDay', 0):,.0f}"
        )
    if item.get("why"):
        lines.append(f"why: {item['why']}")
    for key in ("brinAlternative", "btreeAlternative"):
        alt = item.get(key)
        if alt:
            lines.append(
                f"alternative: {alt['definition']} (~{_bytes(alt['estimated_size_bytes'])}): {alt['note']}"
            )
    return lines


def _run(
    conn: psycopg.Connection, args: argparse.Namespace, settings: ProfilingSettings
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """optimize_system and, when asked, remediation, both in ``conn``'s database."""
    try:
        report = optimize_system(conn, settings)
        actions = (
            remediate(conn, apply=args.apply, actor=_actor(), settings=settings)
            if args.apply or args.dry_run
            else None
        )
    except psycopg.Error as exc:
        raise AutopilotError(f"optimize failed: {' '.join(str(exc).split())}") from exc
    return report, actions


def _optimize(args: argparse.Namespace) -> int:
    if args.lookback_hours <= 0:
        raise AutopilotError(f"--lookback-hours must be > 0, got {args.lookback_hours:g}")
    if args.min_mean_ms < 0:
        raise AutopilotError(f"--min-mean-ms must be >= 0, got {args.min_mean_ms:g}")
    settings = ProfilingSettings(lookback_hours=args.lookback_hours, min_mean_ms=args.min_mean_ms)
    with server.session(autocommit=True, migrated=True) as conn:
        if args.target == targets.DEFAULT:
            report, actions = _run(conn, args, settings)
        else:
            target = targets.get_target(conn, targets.validate_name(args.target))
            with targets.connect_target(target) as source:
                if migrate.pending(source):
                    raise AutopilotError(
                        f"target {target.name!r}: its schema is not up to date: run `autopilot db migrate` "
                        "against it"
                    )
                report, actions = _run(source, args, settings)
                try:
                    copy_recommendations(source, conn, target.name)
                except psycopg.Error as exc:
                    raise AutopilotError(
                        f"storing {target.name}'s recommendations failed: {' '.join(str(exc).split())}"
                    ) from exc
    if args.json:
        out = dict(report)
        if actions is not None:
            out["remediation"] = actions
        print(json.dumps(out, indent=2, default=str))
        return 1 if actions and any(a.get("result") == "failed" for a in actions) else 0
    _print_report(report)
    if actions is not None:
        verb = "applied" if args.apply else "would apply"
        if not actions:
            print(
                "\nremediation: nothing to do (only open, high-priority, HypoPG-verified index "
                "recommendations are applied automatically)"
            )
        for a in actions:
            detail = a.get("statement") or a.get("index") or ""
            note = f": {a['error']}" if a.get("error") else ""
            print(f"\nremediation ({verb}): {a.get('result')} {a.get('key', '')} {detail}{note}")
    return 1 if actions and any(a.get("result") == "failed" for a in actions) else 0
