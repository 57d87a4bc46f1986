"""Database URL handling: one URL from the user, the driver-specific forms each consumer needs."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from autopilot_pipeline.errors import AutopilotError


def parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise AutopilotError(
            "database URL is not valid (expected postgresql://user:pass@host:5432/db)"
        ) from exc
    if not parsed.drivername.startswith("postgres"):
        raise AutopilotError(f"database URL must be a postgresql:// URL, got '{parsed.drivername}://'")
    return parsed.set(drivername="postgresql")


def sqlalchemy_url(url: str) -> str:
    """psycopg 3 driver for our own code."""
    return parse(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def dagster_url(url: str, database: str) -> str:
    """psycopg2 form dagster-postgres needs (FACTS trap 2), pointing at the Dagster database."""
    return (
        parse(url)
        .set(drivername="postgresql+psycopg2", database=database)
        .render_as_string(hide_password=False)
    )


def libpq_url(url: str) -> str:
    """Plain libpq URL for psycopg.connect and command-line tools."""
    return parse(url).render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return parse(url).set(database=database).render_as_string(hide_password=False)


def display(url: str) -> str:
    return parse(url).render_as_string(hide_password=True)
