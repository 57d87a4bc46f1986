"""Local Celery workers (``autopilot worker`` processes) for ``autopilot dev --workers N``, the tests and
the benchmark: started in their own sessions, found ready by a Celery ping, stopped together.

A worker's session holds its main process and its pool processes, so :meth:`LocalWorkers.kill` with
SIGKILL is a machine that died mid-task, and :meth:`LocalWorkers.stop` leaves no pool process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from autopilot_pipeline import settings
from autopilot_pipeline.commands.worker import POLARS_THREADS_ENV, share_of_cores
from autopilot_pipeline.defs import executors
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.integrations.redis_local import LocalRedis, redis_missing

__all__ = ["LocalCluster", "LocalWorkers", "ping", "start_cluster"]


def ping(redis_url: str, timeout_s: float = 1.0) -> set[str]:
    """Names of the workers that answer a Celery ping on ``redis_url`` (e.g. ``w1@host``)."""
    from celery import Celery

    app = Celery("autopilot-ping", broker=redis_url, backend=redis_url)
    try:
        replies = app.control.ping(timeout=timeout_s) or []
    finally:
        app.close()
    return {name for reply in replies for name in reply}


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class LocalWorkers:
    """``count`` workers named ``{prefix}1..N``, each with ``concurrency`` pool processes, logs in ``log_dir``."""

    count: int
    env: dict[str, str]
    log_dir: Path
    concurrency: int = 1
    prefix: str = "w"
    loglevel: str = "WARNING"
    processes: list[subprocess.Popen] = field(default_factory=list, init=False)

    @property
    def names(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(1, self.count + 1)]

    def start(self, redis_url: str, timeout_s: float = 120.0) -> LocalWorkers:
        """Start every worker and wait until all answer a ping (or one exits: RuntimeError). The workers share
        this machine: each pool process gets its share of the cores for polars (``share_of_cores``)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {POLARS_THREADS_ENV: share_of_cores(self.count * self.concurrency), **self.env}
        for name in self.names:
            command = [
                sys.executable, "-m", "autopilot_pipeline.cli", "worker",
                "--name", name, "--concurrency", str(self.concurrency), "--loglevel", self.loglevel,
            ]  # fmt: skip
            with open(self.log_dir / f"{name}.log", "ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        command,
                        cwd=settings.PROJECT_ROOT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=_reset_signals,
                    )
                )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in zip(self.names, self.processes, strict=True):
                if process.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        f"worker {name} exited with code {process.returncode} (see {self.log_dir / name}.log)"
                    )
            answered = {reply.split("@")[0] for reply in ping(redis_url)}
            if answered >= set(self.names):
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"workers did not answer within {timeout_s:.0f} s (logs in {self.log_dir})")

    def kill(self, index: int) -> None:
        """SIGKILL worker ``index`` (0-based) and its pool processes at once, as a machine that died."""
        process = self.processes[index]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM every worker (Celery's warm shutdown), SIGKILL each session after ``grace_s``."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class LocalCluster:
    """A loopback Redis and the workers that take steps from it (``autopilot dev --workers N``)."""

    redis: LocalRedis
    workers: LocalWorkers

    def stop(self, grace_s: float = 3.0) -> None:
        self.workers.stop(grace_s)
        self.redis.stop(timeout_s=2.0)


def start_cluster(count: int, env: dict[str, str]) -> LocalCluster:
    """Redis on a free 127.0.0.1 port (files under the state directory) and ``count`` workers; ``env`` and
    this process's environment are switched to the Celery executor on that Redis, for what starts next."""
    if redis_missing():
        raise AutopilotError("--workers needs Debian's redis-server: apt-get install redis-server")
    try:
        redis = LocalRedis(settings.state_dir() / "redis").start()
    except RuntimeError as exc:
        raise AutopilotError(str(exc)) from None
    switch = {executors.EXECUTOR_ENV: "celery", executors.REDIS_URL_ENV: redis.url}
    env.update(switch)
    os.environ.update(switch)
    workers = LocalWorkers(count, env, settings.state_dir() / "workers", prefix="worker", loglevel="INFO")
    try:
        workers.start(redis.url)
    except RuntimeError as exc:
        redis.stop()
        raise AutopilotError(str(exc)) from None
    return LocalCluster(redis, workers)
