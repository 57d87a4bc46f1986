"""Ordered, idempotent SQL migrations from ``sql/``: each file applied once, in its own transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.settings import PROJECT_ROOT

SQL_DIR = PROJECT_ROOT / "sql"

_LEDGER = """
CREATE SCHEMA IF NOT EXISTS automation;
CREATE TABLE IF NOT EXISTS automation.schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def available(sql_dir: Path = SQL_DIR) -> list[Migration]:
    return [Migration(p.stem, p) for p in sorted(sql_dir.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


def applied(conn: psycopg.Connection) -> dict[str, str]:
    """Applied versions and their checksums (empty when the ledger does not exist yet)."""
    exists = conn.execute("SELECT to_regclass('automation.schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return dict(conn.execute("SELECT version, checksum FROM automation.schema_migrations").fetchall())


def pending(conn: psycopg.Connection, sql_dir: Path = SQL_DIR) -> list[Migration]:
    done = applied(conn)
    return [m for m in available(sql_dir) if m.version not in done]


def migrate(conninfo: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; returns the versions applied (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Serialize concurrent runners (e.g. the webserver and the daemon starting together).
        conn.execute("SELECT pg_advisory_lock(hashtext('autopilot.migrate'))")
        try:
            with conn.transaction():
                conn.execute(_LEDGER)
            done = applied(conn)
            for migration in available(sql_dir):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise AutopilotError(
                            f"migration {migration.version} changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            "INSERT INTO automation.schema_migrations (version, checksum) VALUES (%s, %s)",
                            (migration.version, migration.checksum),
                        )
                except psycopg.Error as exc:
                    first_line = str(exc).strip().splitlines()[0]
                    raise AutopilotError(f"migration {migration.version} failed: {first_line}") from exc
                applied_now.append(migration.version)
            if applied_now:
                _reapply_least_privilege(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('autopilot.migrate'))")
    return applied_now


def _reapply_least_privilege(conn: psycopg.Connection) -> None:
    """Tables added by migrations after the least-privilege one get its revokes, RLS and policies too."""
    exists = conn.execute(
        "SELECT to_regprocedure('automation.apply_least_privilege()') IS NOT NULL"
    ).fetchone()
    if exists and exists[0]:
        with conn.transaction():
            conn.execute("SELECT automation.apply_least_privilege()")


def require_current(conn: psycopg.Connection) -> None:
    """Raise a clear error when the schema is behind the code."""
    missing = pending(conn)
    if missing:
        raise AutopilotError(
            f"database schema is not up to date ({len(missing)} migration(s) pending, first "
            f"{missing[0].version}); run `autopilot db migrate`"
        )
