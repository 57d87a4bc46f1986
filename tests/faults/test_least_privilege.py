"""Issue 10 point 10: least privilege in Postgres, on the embedded PG 18 and on Debian's PG 15.

A plain login role can neither read nor write any table of ``automation`` or ``analytics``; the app role
can log a query and do nothing else; the pipeline role reads and writes; Supabase's ``anon`` and
``authenticated`` keep nothing even when they had been granted everything; the migration is idempotent.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy.engine import make_url

from autopilot_pipeline.postgres import migrate

from ..conftest import _create_database, _drop_database

SCHEMAS = ("automation", "analytics")


def tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') ORDER BY 1, 2",
        (list(SCHEMAS),),
    ).fetchall()


@pytest.fixture
def login_role(conn: psycopg.Connection, pg_url: str) -> Iterator:
    """Make login roles (optionally members of a group role); yields a function returning their URL."""
    made: list[str] = []

    def make(member_of: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        password = uuid.uuid4().hex
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        )
        if member_of:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(name)))
        made.append(name)
        return make_url(pg_url).set(username=name, password=password).render_as_string(hide_password=False)

    yield make
    for name in made:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def denied(url: str, statement: sql.Composable) -> bool:
    with psycopg.connect(url, autocommit=True) as c:
        try:
            c.execute(statement)
        except errors.InsufficientPrivilege:
            return True
    return False


def test_a_plain_role_can_neither_read_nor_write_any_table(conn, login_role) -> None:
    url = login_role()
    every = tables(conn)
    assert len(every) > 20
    for schema, table in every:
        name = sql.Identifier(schema, table)
        assert denied(url, sql.SQL("SELECT * FROM {} LIMIT 1").format(name)), f"{schema}.{table} readable"
        assert denied(url, sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name)), (
            f"{schema}.{table} writable"
        )
        assert denied(url, sql.SQL("DELETE FROM {}").format(name)), f"{schema}.{table} deletable"
    assert denied(url, sql.SQL("SELECT automation.log_query_performance('SELECT 1', 1.0)"))


def test_the_app_role_can_log_a_query_and_nothing_else(conn, login_role) -> None:
    url = login_role("autopilot_app")
    with psycopg.connect(url, autocommit=True) as app:
        (logged_id,) = app.execute(
            "SELECT automation.log_query_performance('SELECT * FROM orders WHERE id = 1', 12.5, 1, 'api')"
        ).fetchone()
    row = conn.execute(
        "SELECT query, execution_time_ms, source FROM automation.query_performance WHERE id = %s",
        (logged_id,),
    ).fetchone()
    assert row == ("SELECT * FROM orders WHERE id = 1", 12.5, "api")
    for schema, table in tables(conn):
        assert denied(url, sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(schema, table)))
    assert denied(
        url, sql.SQL("INSERT INTO automation.query_performance (query, execution_time_ms) VALUES ('x', 1)")
    )
    assert denied(url, sql.SQL("SELECT automation.apply_least_privilege()"))
    # the function runs with pinned search_path: the caller's objects cannot stand in for ours
    (config,) = conn.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = 'automation.log_query_performance(text, double precision, bigint, text)'::regprocedure"
    ).fetchone()
    assert config == ["search_path=pg_catalog, pg_temp"]


def test_the_pipeline_role_reads_and_writes(conn, login_role) -> None:
    url = login_role("autopilot_pipeline")
    with psycopg.connect(url, autocommit=True) as pipeline:
        pipeline.execute(
            "INSERT INTO automation.health_log (checked_at, source, status, response_time_ms) "
            "VALUES (now(), 'api', 'healthy', 12)"
        )
        assert pipeline.execute("SELECT count(*) FROM automation.health_log").fetchone() == (1,)
        pipeline.execute("DELETE FROM analytics.uptime_hourly")
    for schema, table in tables(conn):
        (rls,) = conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (f"{schema}.{table}",)
        ).fetchone()
        assert rls, f"{schema}.{table} has no row-level security"


def _migrate_with_supabase_roles(server_url: str) -> str:
    """Migrate up to the one before least privilege, grant anon/authenticated everything (as a careless
    setup would), then migrate to the end: they must end with nothing."""
    name = f"autopilot_lp_{uuid.uuid4().hex[:8]}"
    url = _create_database(server_url, name)
    with psycopg.connect(url, autocommit=True) as c:
        for role in ("anon", "authenticated"):
            if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    before = Path(tempfile.mkdtemp(prefix="autopilot-lp-"))
    try:
        for m in migrate.available():
            if m.version < "0012":
                shutil.copy(m.path, before / m.path.name)
        migrate.migrate(url, before)
    finally:
        shutil.rmtree(before, ignore_errors=True)
    with psycopg.connect(url, autocommit=True) as c:
        for role in ("anon", "authenticated"):
            for schema in SCHEMAS:
                c.execute(
                    sql.SQL("GRANT ALL ON SCHEMA {} TO {}").format(
                        sql.Identifier(schema), sql.Identifier(role)
                    )
                )
                c.execute(
                    sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA {} TO {}").format(
                        sql.Identifier(schema), sql.Identifier(role)
                    )
                )
    assert "0012_least_privilege" in migrate.migrate(url)
    assert migrate.migrate(url) == []  # up to date: nothing to do
    return name


def _check_supabase_roles(server_url: str, name: str) -> None:
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as c:
        for role in ("anon", "authenticated"):
            for schema in SCHEMAS:
                (usage,) = c.execute(
                    "SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, schema)
                ).fetchone()
                assert not usage, f"{role} can use {schema}"
            grants = c.execute(
                "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = %s "
                "AND table_schema = ANY(%s)",
                (role, list(SCHEMAS)),
            ).fetchone()
            assert grants == (0,), f"{role} keeps table grants"
        # idempotent: the whole file again, as if applied twice
        c.execute((migrate.SQL_DIR / "0012_least_privilege.sql").read_text())


def test_supabase_roles_get_nothing_on_postgres_18(pg_server: str) -> None:
    name = _migrate_with_supabase_roles(pg_server)
    try:
        _check_supabase_roles(pg_server, name)
    finally:
        _drop_database(pg_server, name)


def test_supabase_roles_get_nothing_on_postgres_15(pg15_server: str) -> None:
    name = _migrate_with_supabase_roles(pg15_server)
    try:
        _check_supabase_roles(pg15_server, name)
    finally:
        _drop_database(pg15_server, name)
