"""``autopilot generate-demo-data``: seeded, realistic demo data with injected incidents, bulk-loaded."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from autopilot_pipeline.demo import store as demo_load
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import migrate, server, urls


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate-demo-data",
        help="load seeded demo data (health checks, incidents, metrics, releases, query workload)",
        description="Generate realistic, seeded demo data and bulk-load it with COPY. Injected incidents "
        "are written to demo.incidents as ground truth.",
    )
    parser.add_argument("--days", type=_positive_int, default=7, help="days of history (default 7)")
    parser.add_argument(
        "--components", type=_positive_int, default=8, help="monitored components (default 8)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed; same seed, same data (default 42)")
    parser.add_argument("--replace", action="store_true", help="discard existing demo/monitoring data first")
    parser.add_argument(
        "--end",
        type=_timestamp,
        default=None,
        help="end of the period, ISO-8601 (default: now, to the minute)",
    )
    parser.add_argument(
        "--app-scale",
        type=_positive_float,
        default=1.0,
        help="size of the demo app tables (1.0 = 50k orders)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    db = server.resolve()
    migrate.migrate(db.url)
    print(f"loading demo data into {urls.display(db.url)}", flush=True)
    summary = demo_load.load_demo_data(
        db.url,
        days=args.days,
        components=args.components,
        seed=args.seed,
        replace=args.replace,
        end=args.end,
        progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True),
        app_scale=args.app_scale,
    )
    if not summary.rows:
        raise AutopilotError("nothing was loaded")
    print(summary.text())
    print(f"loaded {summary.total_rows:,} rows in {time.perf_counter() - began:.1f} s")
    return 0
