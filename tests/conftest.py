"""Real Postgres for every database test.

By default a throw-away embedded PostgreSQL 18 (fsync off) is started once per session; set
``AUTOPILOT_TEST_DATABASE_URL`` to use another server instead. Each test gets its own database cloned from
a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import os

# Tiny model fits are ~10x slower when OpenBLAS threads compete on 2 cores (set before numpy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from autopilot_pipeline.postgres import migrate, urls
from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

TEMPLATE = "autopilot_test_template"


def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(urls.with_database(server_url, "postgres"), autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return urls.with_database(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(urls.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Postgres server (``postgres`` database) holding a migrated template database."""
    configured = os.environ.get("AUTOPILOT_TEST_DATABASE_URL")
    server: EmbeddedPostgres | None = None
    if configured:
        server_url = urls.libpq_url(configured)
    else:
        # Outside pytest's basetemp: the server runs as another user and needs its own traversable tree.
        root = Path(os.environ.get("AUTOPILOT_TEST_PG_ROOT") or tempfile.mkdtemp(prefix="autopilot-test-pg-"))
        server = EmbeddedPostgres(root, fast=True)
        server.start()
        server_url = server.url()
    _drop_database(server_url, TEMPLATE)
    migrate.migrate(_create_database(server_url, TEMPLATE))
    yield server_url
    _drop_database(server_url, TEMPLATE)
    if server is not None:
        server.stop()
        if not os.environ.get("AUTOPILOT_TEST_PG_ROOT"):
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"autopilot_test_{uuid.uuid4().hex[:12]}"
    url = _create_database(pg_server, name, template=TEMPLATE)
    yield url
    _drop_database(pg_server, name)


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def pg15_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's PostgreSQL 15 (what Supabase runs); `.ci/run` installs it."""
    from .system_postgres import SystemPostgres, available

    if not available(15):
        pytest.skip("Debian postgresql-15 is not installed (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="autopilot-test-pg15-"))  # owned by the postgres user below
    server = SystemPostgres(15, root)
    url = server.start()
    yield url
    server.stop()
    shutil.rmtree(root, ignore_errors=True)
