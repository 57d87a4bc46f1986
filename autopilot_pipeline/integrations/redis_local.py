"""A throw-away Redis on 127.0.0.1 (Debian's ``redis-server``): the Celery broker and result backend of
``autopilot dev --workers N``, the tests and the benchmark.

Never bound to anything but loopback, no persistence (``--save ''``, no append-only file), its working
directory under ``root``; started in its own session and stopped by signalling its own PID only.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from autopilot_pipeline.integrations.prometheus_local import free_port

__all__ = ["LocalRedis", "redis_missing"]

BINARY = "redis-server"


def redis_missing() -> bool:
    """True when ``redis-server`` is not on PATH (``apt-get install redis-server``)."""
    return shutil.which(BINARY) is None


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class LocalRedis:
    """One ``redis-server`` on 127.0.0.1:``port`` (a free one by default), files under ``root``."""

    root: Path
    port: int = 0
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> LocalRedis:
        if redis_missing():
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        command = [
            BINARY,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.root),
            "--logfile", str(self.root / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_reset_signals
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {self.process.returncode} (see {self.root / 'redis.log'})"
                )
            if _answers_ping(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (nothing to save), SIGKILL if it is not gone within ``timeout_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
