"""Issue 10 point 6: user errors are one line that says what to do, exit code 2, no traceback; ``--debug``
shows the traceback. Each case is the real CLI in a real process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, assert_one_line_error, cli_env, free_port, run_cli


@pytest.fixture
def series(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("timestamp,value\n2026-01-01T00:00:00,1\n2026-01-01T00:01:00,2\n")
    return path


def test_output_path_that_is_a_folder(series: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    result = run_cli("anomalies", "score", str(series), str(folder))
    assert_one_line_error(result, "is a folder", "scores.csv")


def test_input_path_that_is_a_folder(tmp_path: Path) -> None:
    result = run_cli("anomalies", "score", str(tmp_path), str(tmp_path / "out.csv"))
    assert_one_line_error(result, "is a folder")


def test_unreadable_input(series: Path, tmp_path: Path) -> None:
    series.chmod(0)
    command = [
        sys.executable,
        "-m",
        "autopilot_pipeline.cli",
        "anomalies",
        "score",
        str(series),
        str(tmp_path / "o.csv"),
    ]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, env=cli_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_one_line_error(result, "cannot read", "permission denied")


def test_unreachable_database() -> None:
    url = f"postgresql://app:pw@127.0.0.1:{free_port()}/autopilot"
    result = run_cli("alerts", "list", env=cli_env(AUTOPILOT_DATABASE_URL=url))
    assert_one_line_error(result, "cannot connect to Postgres", "127.0.0.1")


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = cli_env(AUTOPILOT_STATE_DIR=str(tmp_path / "state"))
        result = run_cli("dev", "--port", str(port), env=env)
    assert_one_line_error(result, f"port {port}", "in use", "--port")


def test_debug_shows_the_traceback(series: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    result = run_cli("--debug", "anomalies", "score", str(series), str(folder))
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("autopilot: error: ")


def test_unexpected_errors_are_one_line_too() -> None:
    """Errors nobody foresaw (here: an OSError from deep inside) still end in one line, not a traceback."""
    from autopilot_pipeline.cli import describe

    message, code = describe(IsADirectoryError(21, "Is a directory", "/tmp/x"))
    assert (message, code) == ("/tmp/x is a folder; give a file path", 2)
    message, code = describe(KeyError("boom"))
    assert code == 1 and "--debug" in message and "\n" not in message
