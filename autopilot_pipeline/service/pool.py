"""A small pool of autocommit psycopg connections for the service's worker threads.

At most ``size`` connections are open; a request waits for a free one. A connection that fails with an
operational error (the server restarted or went away) is discarded, and a request whose *pooled* connection
turns out dead is retried once on a fresh one, so a database that comes back is served again at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

from autopilot_pipeline.postgres import urls

__all__ = ["ConnectionPool", "DatabaseUnavailable"]

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message is one line without credentials."""


class ConnectionPool:
    def __init__(
        self, url: str, size: int = 4, connect_timeout_s: int = 3, statement_timeout_ms: int = 30_000
    ):
        self._url = urls.libpq_url(url)
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._connect_timeout_s = connect_timeout_s
        self._options = f"-c statement_timeout={int(statement_timeout_ms)}"
        self.display_url = urls.display(url)

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout_s, options=self._options
            )
        except psycopg.OperationalError:
            raise DatabaseUnavailable(f"database at {self.display_url} is unreachable") from None

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` on a pooled connection (read-only work: it may run twice after a dead connection)."""
        with self._slots:
            for attempt in (1, 2):
                try:
                    conn, pooled = self._idle.get_nowait(), True
                except queue.Empty:
                    conn, pooled = self._connect(), False
                try:
                    result = work(conn)
                except psycopg.OperationalError:
                    conn.close()
                    if pooled and attempt == 1:
                        continue
                    raise DatabaseUnavailable(f"database at {self.display_url} is unreachable") from None
                except BaseException:
                    conn.close()
                    raise
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    self._idle.put(conn)
                else:
                    conn.close()
                return result
        raise AssertionError("unreachable")

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
