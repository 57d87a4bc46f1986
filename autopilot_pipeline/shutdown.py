"""Stopping on SIGTERM and Ctrl-C: the whole command, not only the Dagster job that happens to run.

Commands that start servers (``autopilot dev``, ``autopilot demo``) call :func:`install` first. Then
SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` in the main thread, so the commands' ``finally``
blocks stop every child (Dagster, Prometheus, the embedded Postgres).

Two complications. Dagster, while it executes a run in process, installs its own SIGINT/SIGTERM handler:
it cancels the run and returns, and the caller would go on with the next job. A wakeup pipe
(``signal.set_wakeup_fd``) sees every signal whichever Python handler is installed, so
:func:`raise_if_requested` after each run turns a signal Dagster consumed into ``KeyboardInterrupt``.
And a signal that arrives while a server is being started must not leave it half-owned:
:func:`deferred` postpones the interrupt to the end of such a block.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

__all__ = ["cleaning_up", "deferred", "exit_now", "install", "raise_if_requested"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_state: dict[str, int | bool | None] = {"defer": 0, "pending": False, "read_fd": None}
_before_install: dict[int, signal.Handlers | object] = {}  # the handlers install() replaced


def _handler(_signum: int, _frame: FrameType | None) -> None:
    if _state["defer"]:
        _state["pending"] = True
        return
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to ``KeyboardInterrupt`` (main thread only; else a no-op).

    SIGINT is set explicitly too: a parent shell script may have started us with SIGINT ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _STOP_SIGNALS:
        _before_install.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, _handler)
    if _state["read_fd"] is None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        _state["read_fd"] = read_fd


def raise_if_requested() -> None:
    """``KeyboardInterrupt`` if a stop signal arrived since the last call (whoever handled it)."""
    read_fd = _state["read_fd"]
    if read_fd is None:
        return
    received = b""
    try:
        while chunk := os.read(int(read_fd), 512):
            received += chunk
    except BlockingIOError:
        pass
    if any(byte in _STOP_SIGNALS for byte in received):
        if _state["defer"]:
            _state["pending"] = True  # raised when the deferred block ends
            return
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop signal until the block is done (e.g. while a server starts and its handle is returned)."""
    _state["defer"] = int(_state["defer"] or 0) + 1
    try:
        yield
    finally:
        _state["defer"] = int(_state["defer"] or 0) - 1
        if not _state["defer"] and _state["pending"]:
            _state["pending"] = False
            raise KeyboardInterrupt


@contextmanager
def cleaning_up() -> Iterator[None]:
    """The stopping of the children: a second Ctrl-C must not abort it (it is bounded). Afterwards the
    handlers from before :func:`install` are back, so a caller that goes on in the same process (the tests,
    an embedding program) is not left with stop signals ignored, nor are the processes it starts later
    (an ignored signal is inherited)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in _before_install.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)  # type: ignore[arg-type]
        _before_install.clear()


def exit_now(code: int) -> NoReturn:
    """Exit at once after a stop signal, children already stopped: the interpreter's own teardown of
    Dagster's modules (gRPC) took 3-4 s more under load, which the 10 s budget cannot spare."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
