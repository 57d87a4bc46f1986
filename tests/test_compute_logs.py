"""A step's compute logs: Dagster's mirror where a person watches, none in a Celery worker's pool process, and
the output in the files the UI reads either way (autopilot_pipeline/defs/compute_logs.py)."""

from __future__ import annotations

import logging
import os
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


def test_by_default_it_is_dagsters_capture_with_its_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compute_logs, "_mirror", True)
    manager = _manager(tmp_path)
    before = _children()
    with manager.capture_logs(["run2", "compute_logs", "step_b"]):
        assert len(_children() - before) >= 2  # Dagster's tail and its watcher
    assert manager.is_capture_complete(["run2", "compute_logs", "step_b"])
