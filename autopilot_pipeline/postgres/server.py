"""Resolve the database a command works on: the configured URL, or the embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from autopilot_pipeline import settings
from autopilot_pipeline.errors import AutopilotError, redact
from autopilot_pipeline.postgres import migrate, urls
from autopilot_pipeline.postgres.embedded import EmbeddedPostgres


@dataclass(frozen=True)
class Database:
    """The app database URL (libpq form) and, when embedded, the server that serves it."""

    url: str
    embedded: EmbeddedPostgres | None = None
    started_here: bool = False  # this process started the embedded server (and should stop it)

    def url_for(self, database: str) -> str:
        return urls.with_database(self.url, database)

    @property
    def dagster_url(self) -> str:
        return urls.dagster_url(self.url, settings.DAGSTER_DATABASE)


def embedded_server(fast: bool = False) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.state_dir() / "postgres", fast=fast)


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """Connect with a one-line, password-free error on failure."""
    try:
        return psycopg.connect(urls.libpq_url(url), connect_timeout=10, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        reason = redact(
            " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        )
        raise AutopilotError(f"cannot connect to Postgres at {urls.display(url)}: {reason}") from exc


def ensure_database(server_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``server_url`` if it does not exist."""
    with connect(urls.with_database(server_url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # created concurrently by another process
            except psycopg.Error as exc:
                raise AutopilotError(
                    f"database '{name}' does not exist and cannot be created: {str(exc).strip()}"
                ) from exc


def resolve(start_embedded: bool = True) -> Database:
    """The configured database, or the embedded one (started, with its databases created)."""
    configured = settings.configured_database_url()
    if configured:
        urls.parse(configured)  # fail early on a malformed URL
        with connect(configured):
            pass
        ensure_database(configured, settings.DAGSTER_DATABASE)  # Dagster's runs and events live beside
        return Database(url=urls.libpq_url(configured))
    server = embedded_server()
    started = server.start() if start_embedded else False
    for name in (settings.APP_DATABASE, settings.DAGSTER_DATABASE):
        ensure_database(server.url(), name)
    return Database(url=server.url(settings.APP_DATABASE), embedded=server, started_here=started)


def release(db: Database) -> None:
    """Stop the embedded server if this process started it (a running ``autopilot dev`` keeps its own)."""
    if db.embedded is not None and db.started_here:
        db.embedded.stop()


@contextmanager
def session(*, autocommit: bool = False, migrated: bool = False) -> Iterator[psycopg.Connection]:
    """One command's connection to the app database: resolved (the embedded server started when needed),
    closed and released after. ``migrated``: refuse, in one line, a schema with pending migrations."""
    db = resolve()
    try:
        with connect(db.url, autocommit=autocommit) as conn:
            if migrated:
                migrate.require_current(conn)
            yield conn
    finally:
        release(db)
