"""``autopilot dev``: the Dagster UI (webserver + daemon) on 127.0.0.1 against the same Postgres.

Dagster copies the SIGINT handler onto SIGTERM and starts ignoring both when launched from a
non-interactive script (FACTS trap 3). We start it in its own session with default signal handling and
stop it by sending SIGINT to its top process only; it then stops its children itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from autopilot_pipeline import runner, settings
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import migrate, server, urls

STOP_TIMEOUT_S = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser("dev", help="start the Dagster UI and daemon (schedules and sensors run)")
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=3000, help="UI port (default 3000)")
    dev.set_defaults(handler=run)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise AutopilotError(f"port {port} on {host} is in use; choose another with --port") from exc


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run(args: argparse.Namespace) -> int:
    _check_port_free(args.host, args.port)
    db = server.resolve()
    migrate.migrate(db.url)
    env = {**os.environ, **runner.configure_environment(db), "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(settings.PROJECT_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    process = subprocess.Popen(
        command, cwd=settings.PROJECT_ROOT, env=env, start_new_session=True, preexec_fn=_reset_signals
    )
    # Ctrl-C and SIGTERM both stop cleanly, even when our parent started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    url = f"http://{args.host}:{args.port}"
    try:
        if _wait_ready(url, process):
            print(f"Dagster UI: {url}  (database {urls.display(db.url)}) — Ctrl-C stops everything")
        code = process.wait()
        if code != 0:
            raise AutopilotError(f"dagster dev exited with code {code}")
    except KeyboardInterrupt:
        print("stopping Dagster…", file=sys.stderr)
    finally:
        _stop(process)
        server.release(db)
    return 0
