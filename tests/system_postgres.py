"""A throw-away cluster of Debian's PostgreSQL (e.g. 15, as on Supabase) for version-compatibility tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def bin_dir(version: int) -> Path:
    return Path(f"/usr/lib/postgresql/{version}/bin")


def available(version: int) -> bool:
    return (bin_dir(version) / "initdb").exists()


@dataclass
class SystemPostgres:
    version: int
    root: Path
    port: int = 0

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:  # initdb refuses root: run as the packaged postgres user
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self, preload: str = "pg_stat_statements") -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(
            bin_dir(self.version) / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c synchronous_commit=off "
            f"-c shared_preload_libraries={preload}"
        )
        self._run(
            bin_dir(self.version) / "pg_ctl",
            "-D",
            data,
            "-w",
            "-o",
            options,
            "-l",
            self.root / "log",
            "start",
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run(bin_dir(self.version) / "pg_ctl", "-D", self.root / "data", "-w", "-m", "fast", "stop")
