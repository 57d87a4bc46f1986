"""Issue 10 point 7: SIGTERM or Ctrl-C (SIGINT to the foreground process group) stops ``autopilot dev``
and ``autopilot demo`` with every child (Dagster webserver, daemon and code servers, embedded Postgres,
local Prometheus and Pushgateway) within 10 s, and the next start works.

Real processes throughout; FACTS.md trap 3 is why ``dev`` runs Dagster in its own session."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autopilot_pipeline.integrations.prometheus_local import missing_binaries

from .conftest import ROOT, cli_env, free_port
from .processes import alive, descendants, listening, postmaster_pid

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 10  # the guarantee
START_CAP_S = 300  # only a cap for a loaded machine, not an assertion on speed


@pytest.fixture
def state() -> Iterator[Path]:
    # short and outside pytest's tree: the embedded server runs as another user and needs a socket path
    root = Path(tempfile.mkdtemp(prefix="ap-sig-"))
    yield root
    pgdata = root / "postgres" / "pgdata"
    pid = postmaster_pid(pgdata)
    if pid and alive(pid):  # a failed test must not leave a server behind
        from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

        EmbeddedPostgres(root / "postgres").stop()
    shutil.rmtree(root, ignore_errors=True)


def start(args: list[str], state: Path) -> subprocess.Popen:
    """As a shell would start a foreground job: its own process group (so Ctrl-C can be sent to it).
    Output goes to ``state/out.log`` (a pipe nobody reads would fill up and block the children)."""
    with (state / "out.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "autopilot_pipeline.cli", *args],
            cwd=ROOT,
            env=cli_env(AUTOPILOT_STATE_DIR=str(state)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def output(state: Path) -> str:
    return (state / "out.log").read_text(errors="replace")


def wait_until(check: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    """Poll ``check`` (a cap, not a speed assertion); fail with the command's output if it never holds."""
    deadline = time.monotonic() + START_CAP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what}: the command exited with {proc.returncode}")
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: not reached")


def ui_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return True
        except OSError:
            return False

    return check


def stop_and_check(proc: subprocess.Popen, how: str, watched: set[int], ports: list[int]) -> None:
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:  # Ctrl-C in a terminal: SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        for pid in watched | {proc.pid}:  # leave nothing behind, then report
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"still running {STOP_WITHIN_S} s after {how}")
    left = sorted(pid for pid in watched if alive(pid))
    assert not left, f"left running after {how}: {left}"
    assert not [p for p in ports if listening(p)], "a port is still served"


def watch_dev(proc: subprocess.Popen, state: Path) -> set[int]:
    pids = descendants(proc.pid)
    postmaster = postmaster_pid(state / "postgres" / "pgdata")
    assert postmaster and alive(postmaster)
    return pids | {postmaster}


def test_dev_stops_everything_on_sigterm_and_ctrl_c_and_starts_again(state: Path) -> None:
    with_prometheus = not missing_binaries()
    for how in ("SIGTERM", "SIGINT"):
        port = free_port()
        args = ["dev", "--port", str(port), *(["--with-prometheus"] if with_prometheus else [])]
        proc = start(args, state)
        wait_until(ui_ready(port), proc, "the Dagster UI")
        watched = watch_dev(proc, state)
        assert len(watched) >= 4  # dagster dev, webserver, daemon, code server(s), postgres (+ prometheus)
        pg_port = int((state / "postgres" / "postgres.port").read_text())
        stop_and_check(proc, how, watched, [port, pg_port])


def test_demo_stops_everything_on_sigterm_and_the_next_start_works(state: Path) -> None:
    proc = start(["demo", "--days", "2", "--components", "2"], state)
    wait_until(lambda: "materializing" in output(state), proc, "a Dagster job of the demo")
    postmaster = postmaster_pid(state / "postgres" / "pgdata")
    assert postmaster and alive(postmaster)
    watched = descendants(proc.pid) | {postmaster}
    pg_port = int((state / "postgres" / "postgres.port").read_text())
    stop_and_check(proc, "SIGTERM", watched, [pg_port])
    assert "Health by component" not in output(state)  # stopped, not carried on with the next job
    again = subprocess.run(
        [sys.executable, "-m", "autopilot_pipeline.cli", "db", "status"],
        cwd=ROOT,
        env=cli_env(AUTOPILOT_STATE_DIR=str(state)),
        capture_output=True,
        text=True,
        timeout=START_CAP_S,
    )
    assert again.returncode == 0, again.stderr  # the state folder's server starts again
    assert "applied  0012_least_privilege" in again.stdout


def test_after_the_cleanup_the_signal_handlers_from_before_are_back() -> None:
    """``demo``/``dev`` called in process (the tests, an embedding program): the stop signals are ignored
    while the children stop, then the caller's own handlers are back; an ignored SIGTERM would otherwise be
    inherited by every process started later, which then cannot be stopped with it."""
    from autopilot_pipeline import shutdown

    def own(_signum: int, _frame: object) -> None:
        return None

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in signals}
    try:
        signal.signal(signal.SIGTERM, own)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        before = {s: signal.getsignal(s) for s in signals}
        shutdown.install()
        assert signal.getsignal(signal.SIGTERM) is not own
        with shutdown.cleaning_up():
            assert {signal.getsignal(s) for s in signals} == {signal.SIG_IGN}
        assert {s: signal.getsignal(s) for s in signals} == before
        child = subprocess.run(
            [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGTERM))"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "SIG_IGN" not in child.stdout  # SIGTERM reaches what the caller starts next
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
