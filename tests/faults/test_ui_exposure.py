"""Issue 10 point 13: the Dagster UI listens on loopback by default; binding it elsewhere without an
authenticating proxy configured prints a warning."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from autopilot_pipeline.cli import build_parser
from autopilot_pipeline.commands.dev import PROXY_ENV, exposure_warning

from .conftest import ROOT, cli_env, run_cli


def test_loopback_is_the_default() -> None:
    assert build_parser().parse_args(["dev"]).host == "127.0.0.1"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_no_warning_on_loopback(host: str) -> None:
    assert exposure_warning(host, proxy=None) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "ops.example.com"])
def test_a_warning_elsewhere_unless_a_proxy_is_configured(host: str) -> None:
    warning = exposure_warning(host, proxy=None)
    assert warning and "no authentication" in warning and PROXY_ENV in warning
    assert exposure_warning(host, proxy="https://ops.example.com") is None


def test_the_real_command_warns_before_anything_else(tmp_path: Path) -> None:
    """`autopilot dev --host 0.0.0.0` prints the warning first (the port is taken, so it stops there)."""
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = cli_env(AUTOPILOT_STATE_DIR=str(tmp_path / "state"))
        result = run_cli("dev", "--host", "0.0.0.0", "--port", str(port), env=env)
        quiet = run_cli(
            "dev", "--host", "0.0.0.0", "--port", str(port), env={**env, PROXY_ENV: "https://ops.example.com"}
        )
    first, last = result.stderr.strip().splitlines()
    assert first.startswith("autopilot: warning: the Dagster UI has no authentication")
    assert last.startswith("autopilot: error: port") and result.returncode == 2
    assert "warning" not in quiet.stderr and quiet.returncode == 2


def test_the_readme_says_how_to_put_it_behind_a_proxy() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "### Exposing the UI" in readme and PROXY_ENV in readme and "oauth2-proxy" in readme
