"""The bulk reader (ADBC) against the session reader (CSV COPY) on PostgreSQL 18 and 15: same frames, same
types."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from psycopg import sql

from autopilot_pipeline.health import store as sources
from autopilot_pipeline.health.releases import DEPLOYMENT_SCHEMA
from autopilot_pipeline.health.tables import HEALTH_SCHEMA
from autopilot_pipeline.postgres import io, migrate

from .conftest import _create_database, _drop_database

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
ROWS = [  # (checked_at, source, kind, status, response_time_ms): nulls, NaN, ±inf, quotes, microseconds
    (T0 + timedelta(microseconds=1), "api", "health_check", "healthy", 12.5),
    (T0 + timedelta(seconds=30), 'o\'brien "db"', "health_check", "down", None),
    (T0 + timedelta(seconds=61), "api", "error", "error", float("nan")),
    (T0 + timedelta(minutes=5), "api", "health_check", "degraded", float("inf")),
    (T0 + timedelta(minutes=59, seconds=59, microseconds=999_999), "", "health_check", "unknwn", -1.0),
    (T0 + timedelta(hours=1), "api", "health_check", "healthy", 3.0),  # next window
]


@pytest.fixture(params=["embedded-18", "debian-15"])
def conn(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection]:
    """A migrated database on each server version (Supabase runs 15); shadows conftest's ``conn``."""
    server_url = request.getfixturevalue("pg_server" if request.param == "embedded-18" else "pg15_server")
    name = f"io_{uuid.uuid4().hex[:10]}"
    url = _create_database(server_url, name)
    migrate.migrate(url)
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection
    _drop_database(server_url, name)


@pytest.fixture
def filled(conn: psycopg.Connection) -> psycopg.Connection:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO automation.health_log (checked_at, source, kind, status, response_time_ms) "
            "VALUES (%s, %s, %s, %s, %s)",
            ROWS,
        )
        cur.execute(
            "INSERT INTO automation.deployment_log (started_at, duration_ms, status, rolled_back, source, version) "
            "VALUES (%s, 1200.5, 'success', false, 'api', 'v1'), (%s, NULL, 'failed', true, 'web', 'v2')",
            (T0, T0 + timedelta(minutes=1)),
        )
    return conn


def _csv_health(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    query = sql.SQL(
        "SELECT id, {c}, source, kind, status, response_time_ms, {i} FROM automation.health_log "
        "WHERE checked_at >= %s AND checked_at < %s AND source <> %s"
    ).format(c=io.epoch_us("checked_at"), i=io.epoch_us("inserted_at"))
    return io.read_frame(conn, query, (start, end, "ai-ops"), HEALTH_SCHEMA, ("checked_at", "inserted_at"))


def test_bulk_read_matches_the_session_reader(filled: psycopg.Connection) -> None:
    end = T0 + timedelta(hours=1)
    bulk = sources.read_health_window(filled, T0, end).sort("id")
    assert bulk.schema == pl.Schema(HEALTH_SCHEMA)
    assert bulk.height == 5
    assert_frame_equal(bulk, _csv_health(filled, T0, end).sort("id"))
    assert bulk["source"].cast(pl.String).to_list()[1] == 'o\'brien "db"'
    rt = bulk["response_time_ms"]
    assert rt.is_null().sum() == 1 and rt.is_nan().sum() == 1 and rt.is_infinite().sum() == 1
    assert bulk["checked_at"].max() == T0 + timedelta(minutes=59, seconds=59, microseconds=999_999)


def test_bulk_read_of_booleans_and_nulls(filled: psycopg.Connection) -> None:
    frame = sources.read_deployments_window(filled, T0, T0 + timedelta(days=1)).sort("id")
    assert frame.schema == pl.Schema(DEPLOYMENT_SCHEMA)
    assert frame["rolled_back"].to_list() == [False, True]
    assert frame["duration_ms"].to_list() == [1200.5, None]


def test_empty_window_keeps_the_schema(filled: psycopg.Connection) -> None:
    frame = sources.read_health_window(filled, T0 - timedelta(days=2), T0 - timedelta(days=1))
    assert frame.height == 0 and frame.schema == pl.Schema(HEALTH_SCHEMA)


def test_parameters_are_bound_as_literals(filled: psycopg.Connection) -> None:
    hostile = "x' OR '1'='1"
    frame = io.read_bulk(
        filled,
        "SELECT source FROM automation.health_log WHERE source = %s",
        (hostile,),
        {"source": pl.String()},
    )
    assert frame.height == 0
    assert filled.execute("SELECT count(*) FROM automation.health_log").fetchone()[0] == len(ROWS)


def test_bulk_reads_see_committed_rows_only(filled: psycopg.Connection) -> None:
    with psycopg.connect(
        filled.info.dsn, password=filled.info.password
    ) as writer:  # a transaction left open while the bulk read runs
        writer.execute(
            "INSERT INTO automation.health_log (checked_at, source, kind, status, response_time_ms) "
            "VALUES (%s, 'api', 'health_check', 'healthy', 1)",
            (T0 + timedelta(minutes=1),),
        )
        assert sources.read_health_window(writer, T0, T0 + timedelta(hours=1)).height == 5
        writer.commit()
        assert sources.read_health_window(writer, T0, T0 + timedelta(hours=1)).height == 6


def test_same_database_carries_the_password(conn: psycopg.Connection) -> None:
    role = f"carrier_{uuid.uuid4().hex[:8]}"  # roles are server-wide: a fresh one, dropped after
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 's3cret'").format(sql.Identifier(role)))
    try:
        server = conn.info.get_parameters()
        with psycopg.connect(
            host=server["host"], port=server["port"], dbname=server["dbname"], user=role, password="s3cret"
        ) as other:
            conninfo = io.same_database(other)
        assert "password=s3cret" in conninfo
        assert "dbname=" in conninfo and f"user={role}" in conninfo
    finally:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_bulk_session_reuses_one_connection_per_database_and_closes_it(conn, pg_server):
    """The alert engine reads up to three windows of each target per evaluation inside one session: one
    bulk connection per database instead of one per read."""
    pid = {"pid": pl.Int64()}

    def backend(c: psycopg.Connection) -> int:
        return io.read_bulk(c, "SELECT pg_backend_pid()::bigint AS pid", None, pid)["pid"][0]

    assert backend(conn) != backend(conn)  # outside a session: a connection per read
    other_name = f"autopilot_test_other_{uuid.uuid4().hex[:8]}"
    other_url = _create_database(pg_server, other_name)
    try:
        with psycopg.connect(other_url, autocommit=True) as other:
            with io.bulk_session():
                first = backend(conn)
                with io.bulk_session():  # nested: the outer session's connections
                    assert backend(conn) == first
                assert backend(conn) == first
                elsewhere = backend(other)
                assert elsewhere != first and backend(other) == elsewhere  # one per database
                # autocommit: a read sees what was committed after the previous one
                conn.execute("CREATE TABLE public.late (x int)")
                conn.execute("INSERT INTO public.late VALUES (1)")
                assert (
                    io.read_bulk(conn, "SELECT count(*) AS n FROM public.late", None, {"n": pl.Int64()})["n"][
                        0
                    ]
                    == 1
                )
                assert not conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state LIKE 'idle in transaction%%'",
                    (first,),
                ).fetchone()[0]
            for _ in range(100):  # closed with the session (the server notices the goodbye at once)
                alive = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", ([first, elsewhere],)
                ).fetchone()[0]
                if not alive:
                    break
                conn.execute("SELECT pg_sleep(0.05)")
            assert alive == 0
    finally:
        _drop_database(pg_server, other_name)


def test_held_bulk_connections_serve_every_read_and_replace_a_dead_one(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that serves many steps (``io.hold_bulk_connections``) reads on one connection per database;
    when the server ends it, the next read opens another and still returns its rows."""
    pid = {"pid": pl.Int64()}

    def backend() -> int:
        return io.read_bulk(conn, "SELECT pg_backend_pid()::bigint AS pid", None, pid)["pid"][0]

    monkeypatch.setattr(io, "_held", {})
    try:
        first = backend()
        assert {backend() for _ in range(4)} == {first}
        assert conn.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()[0]
        replaced = backend()
        assert replaced != first and backend() == replaced
        with pytest.raises(Exception, match="no_such_table"):  # a bad query still fails, once retried
            io.read_bulk(conn, "SELECT x FROM public.no_such_table", None, {"x": pl.Int64()})
        assert backend() != replaced  # the failed read's connection was replaced
    finally:
        for reader in io._held.values():
            reader.close()
