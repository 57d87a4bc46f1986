"""``autopilot grafana export [--output PATH]``: write the generated Grafana dashboard JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.settings import PROJECT_ROOT


def register(subparsers: argparse._SubParsersAction) -> None:
    grafana = subparsers.add_parser("grafana", help="Grafana dashboard as code: export")
    actions = grafana.add_subparsers(dest="grafana_command", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export", help="write the dashboard JSON (default: grafana/dashboards/autopilot.json in the project)"
    )
    export.add_argument("--output", "-o", type=Path, metavar="PATH", help="where to write the JSON")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from autopilot_pipeline.metrics.dashboard import DEFAULT_PATH, build_dashboard, export

    path: Path = args.output if args.output is not None else PROJECT_ROOT / DEFAULT_PATH
    if path.is_dir():
        raise AutopilotError(f"{path} is a directory; pass a file path such as {path / 'autopilot.json'}")
    try:
        export(path)
    except OSError as exc:
        raise AutopilotError(f"cannot write {path}: {exc.strerror or exc}") from exc
    panels = sum(1 for p in build_dashboard()["panels"] if p.get("type") != "row")
    print(f"wrote {path} ({panels} panels)")
    return 0
