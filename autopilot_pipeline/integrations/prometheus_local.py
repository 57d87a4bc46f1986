"""A local Pushgateway + Prometheus pair on loopback (Debian's ``prometheus-pushgateway`` and ``prometheus``).

Used by ``autopilot dev --with-prometheus`` (so a newcomer sees the pushed metrics in Prometheus's own UI)
and by the tests. Both binaries run in their own session with default signal handling (the Python
equivalent of ``setsid env --default-signal=INT,TERM``, FACTS.md section 4), keep every file under
``root`` (TSDB path given; the Pushgateway's persistence file disabled), and are stopped by signalling
their own PID only.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autopilot_pipeline.settings import PROJECT_ROOT

__all__ = ["BINARIES", "LocalPrometheus", "free_port", "missing_binaries"]

BINARIES = ("prometheus-pushgateway", "prometheus")
ALERT_RULES = PROJECT_ROOT / "prometheus" / "alerts.yml"


def missing_binaries() -> list[str]:
    """Which of the two binaries are not on PATH (``apt-get install prometheus prometheus-pushgateway``)."""
    return [name for name in BINARIES if shutil.which(name) is None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@dataclass
class LocalPrometheus:
    """A Pushgateway scraped every ``scrape_interval`` by a Prometheus, both on 127.0.0.1."""

    root: Path
    pushgateway_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    scrape_interval: str = "1s"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def pushgateway_url(self) -> str:
        return f"http://127.0.0.1:{self.pushgateway_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def config(self) -> dict[str, Any]:
        """Prometheus configuration: scrape the Pushgateway, keeping the pushed labels (``honor_labels``)."""
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": [str(ALERT_RULES)] if ALERT_RULES.exists() else [],
            "scrape_configs": [
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{self.pushgateway_port}"]}],
                }
            ],
        }

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [shutil.which(name) or name, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_reset_signals,
            cwd=self.root,
        )
        log.close()

    def start(self, timeout_s: float = 30.0) -> LocalPrometheus:
        """Start both, wait until both answer ``/-/ready``; RuntimeError with the log tail if not."""
        missing = missing_binaries()
        if missing:
            raise RuntimeError(
                f"not installed: {', '.join(missing)} (apt-get install prometheus prometheus-pushgateway)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self._spawn(
            "prometheus-pushgateway",
            [
                f"--web.listen-address=127.0.0.1:{self.pushgateway_port}",
                "--persistence.file=",
            ],
        )
        self._spawn(
            "prometheus",
            [
                f"--config.file={config}",
                f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                "--storage.tsdb.retention.time=1d",
            ],
        )
        try:
            for name, url in (
                ("prometheus-pushgateway", self.pushgateway_url),
                ("prometheus", self.prometheus_url),
            ):
                self._wait(name, f"{url}/-/ready", timeout_s)
        except RuntimeError:
            self.stop()
            raise
        return self

    def _wait(self, name: str, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        process = self.processes[name]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                _get(url)
                return
            except OSError:
                time.sleep(0.1)
        tail = (self.root / f"{name}.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{name} did not become ready at {url}: " + " | ".join(tail))

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM each process (its PID only), then SIGKILL what is still running after ``timeout_s``."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list (raises on a PromQL error)."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = json.loads(_get(url, timeout=10))
        except urllib.error.HTTPError as exc:
            raise ValueError(f"query {expr!r} failed: {exc.read().decode(errors='replace')}") from exc
        return body["data"]["result"]

    def target_up(self) -> bool:
        body = json.loads(_get(f"{self.prometheus_url}/api/v1/targets"))
        return any(t.get("health") == "up" for t in body["data"]["activeTargets"])

    def pushed_text(self) -> str:
        """What the Pushgateway currently exposes (its own /metrics)."""
        return _get(f"{self.pushgateway_url}/metrics").decode()
