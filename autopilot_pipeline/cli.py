"""The ``autopilot`` command. Each subcommand lives in ``autopilot_pipeline.commands.<name>`` and
exposes ``register(subparsers)``; user errors (:class:`AutopilotError`) print one line, not a traceback."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
import traceback
import warnings

from autopilot_pipeline import commands
from autopilot_pipeline.errors import AutopilotError, redact


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopilot",
        description="AI-ops pipeline for a Postgres application, orchestrated by Dagster.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="on an error, also print the full traceback (for bug reports)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if module.name.startswith("_"):  # helpers shared by commands, not commands
            continue
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def _traceback_if(debug: bool) -> None:
    if debug:
        traceback.print_exc()


def describe(exc: BaseException) -> tuple[str, int]:
    """One line saying what went wrong and what to do, and the exit code (2: the user can fix it)."""
    if isinstance(exc, OSError) and not type(exc).__module__.startswith(("psycopg", "sqlalchemy")):
        return _os_error(exc), 2
    module = type(exc).__module__
    if module.startswith(("psycopg", "sqlalchemy")):
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        return (
            f"database error: {first} (check that the database is running and reachable, and "
            "AUTOPILOT_DATABASE_URL if you set it)",
            2,
        )
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return (
        f"unexpected {type(exc).__name__}{': ' + first if first else ''} "
        "(run again with --debug for the traceback and report it)",
        1,
    )


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else None
    if isinstance(exc, IsADirectoryError):
        return (
            f"{where} is a folder; give a file path" if where else f"{exc} (give a file path, not a folder)"
        )
    if isinstance(exc, PermissionError):
        return f"permission denied: {where or exc}; check the file's permissions or choose another path"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {where or exc}"
    if exc.errno == errno.EADDRINUSE:
        return "the address is already in use; stop the other program or choose another port"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device{f' writing {where}' if where else ''}"
    return f"{exc.strerror or exc}{f': {where}' if where else ''}"


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
        _traceback_if(args.debug)
        print(f"autopilot: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the command's own cleanup (children, servers) has run by now
        print("autopilot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `autopilot analyze ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        _traceback_if(args.debug)
        message, code = describe(exc)
        print(f"autopilot: error: {redact(message)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
