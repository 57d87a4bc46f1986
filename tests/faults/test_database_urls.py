"""Issue 10 point 8: passwords with ``@``, ``:``, ``/`` or ``#`` work, raw or percent-encoded, and never
appear in output; malformed URLs get one clear line."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from autopilot_pipeline.postgres import server, urls

from .conftest import assert_one_line_error, cli_env, free_port, run_cli

PASSWORD = "p@ss:w/rd#TAIL"


@pytest.fixture
def role_url(pg_url: str, conn: psycopg.Connection) -> str:
    """A URL with PASSWORD pasted raw, for a login role that has exactly that password."""
    conn.execute(sql.SQL("DROP ROLE IF EXISTS url_user"))
    conn.execute(sql.SQL("CREATE ROLE url_user LOGIN PASSWORD {}").format(sql.Literal(PASSWORD)))
    u = make_url(pg_url)
    yield f"postgresql://url_user:{PASSWORD}@{u.host}:{u.port}/{u.database}"
    conn.execute("DROP ROLE IF EXISTS url_user")


@pytest.mark.parametrize("encode", [False, True], ids=["raw", "percent-encoded"])
def test_password_with_special_characters_connects(role_url: str, encode: bool) -> None:
    url = role_url.replace(PASSWORD, quote(PASSWORD, safe="")) if encode else role_url
    assert urls.parse(url).password == PASSWORD
    with server.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("url_user",)
    assert PASSWORD not in urls.display(url) and "TAIL" not in urls.display(url)
    assert urls.display(url).startswith("postgresql://url_user:***@")


def test_unreachable_database_error_hides_the_whole_password() -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/db"
    result = run_cli("db", "status", env=cli_env(AUTOPILOT_DATABASE_URL=url))
    assert_one_line_error(result, "cannot connect to Postgres", "127.0.0.1")
    assert "TAIL" not in result.stderr and "ss:w" not in result.stderr and "rd#" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@127.0.0.1:notaport/db",
        "postgres//missing-colon",
        "postgresql://u:pw@127.0.0.1:99999999/db",
    ],
)
def test_malformed_url_is_one_clear_line(url: str) -> None:
    result = run_cli("db", "status", env=cli_env(AUTOPILOT_DATABASE_URL=url))
    assert_one_line_error(result, "database URL")
    assert "pw@" not in result.stderr
