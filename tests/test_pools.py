"""Held connections notice a dead server without a round trip (``postgres.pools``), on the real server."""

from __future__ import annotations

import time

import psycopg
import psycopg2
import pytest
from sqlalchemy import create_engine, event, text

from autopilot_pipeline.postgres import pools, urls


def _terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def _until_dead(connection: object) -> bool:
    """The server's goodbye takes a moment to arrive; True as soon as it has."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if pools.looks_dead(connection):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_live_idle_connection_looks_alive_a_terminated_or_closed_one_dead(pg_url: str, driver: str) -> None:
    connect = psycopg.connect if driver == "psycopg" else psycopg2.connect
    conn = connect(pg_url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
        conn.rollback()
        assert not pools.looks_dead(conn)
        _terminate(pg_url, pid)
        assert _until_dead(conn)
    finally:
        conn.close()
    assert pools.looks_dead(conn)


def test_the_pool_replaces_a_dead_connection_without_pinging(pg_url: str) -> None:
    engine = pools.drop_dead_on_checkout(create_engine(urls.sqlalchemy_url(pg_url), pool_size=1))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.connect() as conn:  # the same held connection, no SELECT 1 before it
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
        assert statements == ["SELECT pg_backend_pid()"] * 2
        _terminate(pg_url, first)
        time.sleep(0.2)
        with engine.connect() as conn:  # would fail on the dead connection; a new one instead
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != first
    finally:
        engine.dispose()
