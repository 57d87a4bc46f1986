"""Where a step's stdout and stderr go: Dagster's local compute logs (``dagster.yaml``: ``compute_logs``).

Dagster's ``LocalComputeLogManager`` writes what a step prints to files the UI shows, and mirrors it back to
the process' own stdout/stderr with a ``tail -F`` process and a Python watcher per stream: four processes and
~22 ms CPU per captured step. That mirror is worth it where a person watches the output (``autopilot
dev``'s runs, a terminal). A Celery worker captures every step on its own (a plan of one step) and its
output is a log nobody reads in step order; worse, Celery replaces a pool process' ``sys.stdout`` and
``sys.stderr`` with logging proxies that have no file descriptor, so Dagster's capture (which swaps file
descriptors) wrote nothing there: the UI showed every Celery step's logs empty.

So in a worker's pool processes (:func:`capture_without_mirror`, called by ``worker_app``) a step's
``sys.stdout`` and ``sys.stderr`` are swapped for its compute-log files for the step: its prints, warnings and
Dagster's log lines reach the UI, Celery's own logging keeps going to the worker's log, and no process is
started. Everywhere else it is Dagster's manager unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

from dagster import Field, Float, StringSource
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, touch_file

__all__ = ["StepLogManager", "capture_without_mirror"]

_mirror = True


def capture_without_mirror() -> None:
    """From now on this process (and the processes it forks) captures steps without Dagster's mirror."""
    global _mirror
    _mirror = False


class StepLogManager(LocalComputeLogManager):
    """Dagster's local compute logs; without the mirror processes after :func:`capture_without_mirror`.
    ``base_dir`` defaults to Dagster's own default, ``$DAGSTER_HOME/storage``."""

    @classmethod
    def config_type(cls) -> dict:
        return {
            "base_dir": Field(StringSource, is_required=False),
            "polling_timeout": Field(Float, is_required=False),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict) -> StepLogManager:
        base_dir = config_value.get("base_dir") or os.path.join(os.environ["DAGSTER_HOME"], "storage")
        return cls(base_dir, config_value.get("polling_timeout"), inst_data=inst_data)

    @contextlib.contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        if _mirror:
            with super().capture_logs(log_key) as context:
                yield context
            return
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        ensure_file(out)
        ensure_file(err)
        with (
            open(out, "a", buffering=1, encoding="utf-8") as out_file,
            open(err, "a", buffering=1, encoding="utf-8") as err_file,
            contextlib.redirect_stdout(out_file),
            contextlib.redirect_stderr(err_file),
        ):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))
