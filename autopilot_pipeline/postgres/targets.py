"""Monitored targets: the databases one deployment watches, stored in ``automation.targets``.

A target's URL is never stored: the row names the environment variable or the secrets file that holds it,
and :func:`resolve_url` reads it when a run needs it, so rotating a password needs no change here. The
database configured for Autopilot itself is the target ``default`` (created by migration 0014); its rows
need no URL because it is the pipeline's own database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from autopilot_pipeline.errors import AutopilotError, redact
from autopilot_pipeline.postgres import urls

DEFAULT = "default"
#: Lower-case identifier: safe as a Dagster partition key, a Prometheus label value and a file name.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ENV_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONNECT_TIMEOUT_S = 5  # an unreachable target fails its own run quickly instead of holding a worker

#: Tables whose rows come from a monitored database (``target`` column, migration 0014): ``--purge`` clears them.
TARGET_TABLES = (
    "analytics.quarantine",
    "analytics.uptime_hourly",
    "analytics.uptime_daily",
    "analytics.error_rates_hourly",
    "analytics.response_times_hourly",
    "analytics.health_score_hourly",
    "analytics.release_stats_daily",
    "analytics.metric_samples_hourly",
    "analytics.anomalies",
    "analytics.trends",
    "analytics.failure_predictions",
    "analytics.insights",
    "automation.query_stats",
    "automation.slow_queries",
    "automation.table_statistics",
    "automation.performance_recommendations",
)


@dataclass(frozen=True)
class Target:
    name: str
    url_env: str | None
    url_file: str | None
    added_at: datetime

    @property
    def source(self) -> str:
        """Where the URL comes from, for people (never the URL itself)."""
        if self.url_env:
            return f"env:{self.url_env}"
        if self.url_file:
            return f"file:{self.url_file}"
        return "the configured database"


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise AutopilotError(
            f"target name {name!r} is not valid: use 1-40 lower-case letters, digits and '_', starting with a letter"
        )
    return name


def list_targets(conn: psycopg.Connection) -> list[Target]:
    rows = conn.execute(
        "SELECT name, url_env, url_file, added_at FROM automation.targets ORDER BY name <> 'default', name"
    ).fetchall()
    return [Target(*row) for row in rows]


def get_target(conn: psycopg.Connection, name: str) -> Target:
    row = conn.execute(
        "SELECT name, url_env, url_file, added_at FROM automation.targets WHERE name = %s", (name,)
    ).fetchone()
    if row is None:
        raise AutopilotError(f"unknown target {name!r} (see `autopilot targets list`)")
    return Target(*row)


def add_target(
    conn: psycopg.Connection, name: str, url_env: str | None = None, url_file: str | None = None
) -> Target:
    """Store a target by where its URL lives; exactly one of ``url_env`` and ``url_file``."""
    validate_name(name)
    if (url_env is None) == (url_file is None):
        raise AutopilotError("give exactly one of --url-env and --url-file")
    if url_env is not None and not ENV_PATTERN.match(url_env):
        raise AutopilotError(f"--url-env {url_env!r} is not an environment variable name")
    if url_file is not None:
        url_file = str(Path(url_file).expanduser().resolve())
    row = conn.execute(
        "INSERT INTO automation.targets (name, url_env, url_file) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO NOTHING RETURNING name, url_env, url_file, added_at",
        (name, url_env, url_file),
    ).fetchone()
    if row is None:
        raise AutopilotError(f"target {name!r} already exists (remove it first to change its URL source)")
    return Target(*row)


def remove_target(conn: psycopg.Connection, name: str, purge: bool = False) -> dict[str, int]:
    """Forget a target; with ``purge`` also delete its rows. Returns rows deleted per table."""
    if name == DEFAULT:
        raise AutopilotError("the target 'default' is the configured database and cannot be removed")
    get_target(conn, name)
    deleted: dict[str, int] = {}
    with conn.transaction():
        if purge:
            for table in TARGET_TABLES:
                schema_name, table_name = table.split(".")
                cur = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE target = %s").format(
                        sql.Identifier(schema_name, table_name)
                    ),
                    (name,),
                )
                deleted[table] = cur.rowcount
        conn.execute("DELETE FROM automation.targets WHERE name = %s", (name,))
    return deleted


def resolve_url(target: Target, environ: Mapping[str, str] | None = None) -> str:
    """The target's URL, read now from its variable or file; a one-line error when it is missing."""
    environ = os.environ if environ is None else environ
    if target.url_env:
        value = environ.get(target.url_env, "").strip()
        if not value:
            raise AutopilotError(f"target {target.name!r}: environment variable {target.url_env} is not set")
        return value
    if target.url_file:
        try:
            value = Path(target.url_file).read_text().strip()
        except OSError as exc:
            raise AutopilotError(
                f"target {target.name!r}: cannot read URL file {target.url_file}: {exc.strerror}"
            ) from None
        if not value:
            raise AutopilotError(f"target {target.name!r}: URL file {target.url_file} is empty")
        return value
    raise AutopilotError(f"target {target.name!r} is the configured database: it has no URL of its own")


@contextmanager
def connect_target(target: Target, environ: Mapping[str, str] | None = None) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a (non-default) target; unreachable → one-line :class:`AutopilotError`."""
    url = resolve_url(target, environ)
    urls.parse(url)
    try:
        conn = psycopg.connect(urls.libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.OperationalError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise AutopilotError(
            f"target {target.name!r} is unreachable at {urls.display(url)}: {redact(first)}"
        ) from None
    with conn:
        yield conn


def last_ingest(conn: psycopg.Connection) -> dict[str, datetime]:
    """The latest health hour written per target (``analytics.uptime_hourly``)."""
    rows = conn.execute(
        "SELECT target, max(bucket_start) FROM analytics.uptime_hourly GROUP BY target"
    ).fetchall()
    return {name: at for name, at in rows}
