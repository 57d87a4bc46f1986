"""Issue 10 point 11: the embedded server asks every client for a password (scram-sha-256), keeps the
generated password in a 0600 file, has a 0700 socket folder, listens on loopback only, and a state folder
made by an older version (``trust``) is migrated in place with its data."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from autopilot_pipeline.postgres import urls
from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

from .conftest import cli_env, run_cli

pytestmark = pytest.mark.slow

_OLD_HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"


@pytest.fixture
def server() -> Iterator[EmbeddedPostgres]:
    # outside pytest's tmp tree: the server runs as another user and needs a traversable path
    root = Path(tempfile.mkdtemp(prefix="autopilot-sec-"))
    srv = EmbeddedPostgres(root / "postgres", fast=True)
    yield srv
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)


def no_password(srv: EmbeddedPostgres) -> str:
    return f"postgresql://postgres@127.0.0.1:{srv.port}/postgres"


def assert_locked(srv: EmbeddedPostgres) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(no_password(srv), connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(no_password(srv).replace("postgres@", "postgres:guess@"), connect_timeout=5)
    password_file = srv.root / "postgres.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(srv.pgdata.stat().st_mode) == 0o700  # the socket folder
    with psycopg.connect(srv.url(), connect_timeout=5) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == (str(srv.pgdata),)
        methods = {m for (m,) in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
        assert methods == {"scram-sha-256"}


def test_a_fresh_server_needs_the_generated_password(server: EmbeddedPostgres) -> None:
    server.start()
    assert_locked(server)
    assert "postgres:***@" in urls.display(server.url())


def test_a_trusting_state_folder_is_migrated_with_its_data(server: EmbeddedPostgres) -> None:
    server.start()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept AS SELECT g FROM generate_series(1, 1000) g")
        conn.execute("ALTER ROLE postgres PASSWORD NULL")
    server.stop()
    # what the previous version left behind: trust everywhere, no password
    (server.pgdata / "pg_hba.conf").write_text(_OLD_HBA)
    (server.root / "postgres.password").unlink()
    assert server.start()
    assert_locked(server)
    with psycopg.connect(server.url()) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (1000,)
    server.stop()
    assert server.start()  # and the next start just works
    assert_locked(server)


def test_the_cli_never_prints_the_password() -> None:
    root = Path(tempfile.mkdtemp(prefix="autopilot-sec-cli-"))
    try:
        env = cli_env(AUTOPILOT_STATE_DIR=str(root))
        result = run_cli("db", "migrate", env=env)
        assert result.returncode == 0, result.stderr
        password = (root / "postgres" / "postgres.password").read_text().strip()
        assert password not in result.stdout + result.stderr
        assert "postgres:***@" in result.stdout
    finally:
        EmbeddedPostgres(root / "postgres").stop()
        shutil.rmtree(root, ignore_errors=True)
