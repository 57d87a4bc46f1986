"""Helpers for the fault suite: the real ``autopilot`` CLI in a subprocess, and free local ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOPILOT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``autopilot ARGS`` as a real process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "autopilot_pipeline.cli", *args],
        env=env or cli_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, one ``autopilot: error:`` line on stderr, no traceback."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("autopilot: error: "), err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
