"""The ``autopilot`` command. Each subcommand lives in ``autopilot_pipeline.commands.<name>`` and
exposes ``register(subparsers)``; user errors (:class:`AutopilotError`) print one line, not a traceback."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings

from autopilot_pipeline import commands
from autopilot_pipeline.errors import AutopilotError, redact


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopilot",
        description="AI-ops pipeline for a Postgres application, orchestrated by Dagster.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before numpy loads (the subcommands import it): OpenBLAS threads spin against each other on the many
    # tiny statsmodels fits of the AI-ops forecasts (10x slower under load). Inherited by `autopilot dev`'s
    # Dagster processes. An explicit setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    warnings.filterwarnings("ignore")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except AutopilotError as exc:
        print(f"autopilot: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autopilot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `autopilot analyze ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
