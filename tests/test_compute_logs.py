"""A step's compute logs: Dagster's mirror where a person watches, none in a Celery worker's pool process, and
the output in the files the UI reads either way (autopilot_pipeline/defs/compute_logs.py)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import coloredlogs
import pytest

from autopilot_pipeline.defs import compute_logs
from autopilot_pipeline.defs.compute_logs import StepLogManager


def _children() -> set[int]:
    pid = os.getpid()
    found: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        text = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        found |= {int(c) for c in text}
    return found


def _manager(tmp_path: Path) -> StepLogManager:
    return StepLogManager.from_config_value(None, {"base_dir": str(tmp_path / "logs")})


def test_base_dir_defaults_to_dagsters_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    manager = StepLogManager.from_config_value(None, {})
    assert Path(manager.get_captured_local_path(["r", "k"], "out")).is_relative_to(tmp_path / "storage")


def test_without_the_mirror_a_step_starts_no_process_and_its_output_reaches_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Celery pool process has: sys.stdout/sys.stderr without a file descriptor (Celery's logging
    proxies; here StringIO-like objects), which Dagster's descriptor swap cannot capture."""
    monkeypatch.setattr(compute_logs, "_mirror", True)
    compute_logs.capture_without_mirror()
    assert compute_logs._mirror is False
    manager = _manager(tmp_path)
    handler = coloredlogs.StandardErrorHandler()  # what Dagster's console logger writes through
    log = logging.getLogger("autopilot.test_compute_logs")
    log.addHandler(handler)
    log.propagate = False
    before_out, before_err, before = sys.stdout, sys.stderr, _children()
    try:
        with manager.capture_logs(["run1", "compute_logs", "step_a"]):
            assert _children() == before  # no tail, no watcher
            print("printed by the step")
            log.warning("logged by the step")
    finally:
        log.removeHandler(handler)
    assert sys.stdout is before_out and sys.stderr is before_err
    data = manager.get_log_data(["run1", "compute_logs", "step_a"])
    assert b"printed by the step" in data.stdout
    assert b"logged by the step" in data.stderr
    assert manager.is_capture_complete(["run1", "compute_logs", "step_a"])


_DEFAULT_CAPTURE = """
import os, sys
from pathlib import Path
from autopilot_pipeline.defs.compute_logs import StepLogManager

def children():
    pid = os.getpid()
    return {c for t in os.listdir(f"/proc/{pid}/task") for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()}

manager = StepLogManager.from_config_value(None, {"base_dir": sys.argv[1]})
before = children()
with manager.capture_logs(["run2", "compute_logs", "step_b"]):
    started = len(children() - before)
    print("printed by the step", flush=True)
print(started, manager.is_capture_complete(["run2", "compute_logs", "step_b"]))
"""


def _default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def test_by_default_it_is_dagsters_capture_with_its_mirror(tmp_path: Path) -> None:
    """In a process of its own, with a real stdout (a file) and default signals: Dagster stops its ``tail``
    with SIGTERM, which a process inheriting an ignored or blocked SIGTERM would never see."""
    out = tmp_path / "stdout.txt"
    with open(out, "wb") as stdout:
        subprocess.run(
            [sys.executable, "-c", _DEFAULT_CAPTURE, str(tmp_path / "logs")],
            stdout=stdout,
            check=True,
            timeout=120,
            preexec_fn=_default_signals,
        )
    started, complete = out.read_text().splitlines()[-1].split()
    assert int(started) >= 2 and complete == "True"  # Dagster's tail and its watcher; the capture closed
    saved = (tmp_path / "logs" / "run2" / "compute_logs" / "step_b.out").read_text()
    assert "printed by the step" in saved
