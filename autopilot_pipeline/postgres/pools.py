"""Held connections that notice a dead server without a round trip.

A pool that keeps connections across steps (a Celery worker's, a backfill's run process) must not hand out
one whose server has gone: after a restart or a terminated backend, the first statement on it fails.
SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` before every checkout; on the scale-out benchmark that
was a round trip for every statement Dagster's event log writes, and on 2 busy cores each round trip waits
for the server's process to be scheduled. A server that ends a connection (restart, ``pg_terminate_backend``,
a crashed backend) first sends its error and closes the socket, so an idle connection whose socket has
something to read, or has hung up, is dead: it is dropped and the pool opens another. A healthy idle
connection has nothing to read (nothing here uses LISTEN); the rare message a server sends unasked (a
changed setting after a reload) only costs a new connection.
"""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import Engine, event, exc

__all__ = ["drop_dead_on_checkout", "looks_dead"]


def looks_dead(dbapi_connection: Any) -> bool:
    """True when a psycopg 2 or 3 connection is closed, or its idle socket is readable or hung up."""
    if getattr(dbapi_connection, "closed", False):
        return True
    try:
        fd = dbapi_connection.fileno()
    except Exception:  # noqa: BLE001 - a connection that cannot say is treated as dead
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def _on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    if looks_dead(dbapi_connection):
        raise exc.DisconnectionError("the server closed this connection")


def drop_dead_on_checkout(engine: Engine) -> Engine:
    """Check each connection ``engine``'s pool hands out with :func:`looks_dead` (the pool retries the
    checkout with a new connection); for engines built without ``pool_pre_ping``, as ours and Dagster's are."""
    if not event.contains(engine, "checkout", _on_checkout):
        event.listen(engine, "checkout", _on_checkout)
    return engine
