"""Skip a test, with the reason, when the server it needs lacks an extension (e.g. HypoPG on PG 15)."""

from __future__ import annotations

import psycopg
import pytest

from autopilot_pipeline.postgres import urls


def require_extension(server_url: str, name: str) -> None:
    """``pytest.skip`` unless ``pg_available_extensions`` on that server lists ``name``."""
    with psycopg.connect(urls.libpq_url(server_url), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,)).fetchone()
        version = conn.execute("SHOW server_version").fetchone()[0]
    if row is None:
        pytest.skip(
            f"PostgreSQL {version} at {urls.display(server_url)} does not have the {name} extension "
            f"(not in pg_available_extensions; on Debian install postgresql-<version>-{name})"
        )
