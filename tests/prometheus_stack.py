"""A real Pushgateway + Prometheus for tests, on free loopback ports with storage in a temp directory.

Skips (with the reason) only when the Debian binaries are absent; ``.ci/run`` installs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from autopilot_pipeline.integrations.prometheus_local import LocalPrometheus, missing_binaries

MISSING = missing_binaries()
needs_prometheus = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} not installed "
    "(apt-get install prometheus prometheus-pushgateway; CI installs them)",
)


@pytest.fixture(scope="module", name="prometheus_stack")
def prometheus_stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    """Both binaries started (setsid, default signals, --persistence.file= empty), stopped at teardown."""
    if MISSING:
        pytest.skip(f"{', '.join(MISSING)} not installed (CI installs them)")
    stack = LocalPrometheus(tmp_path_factory.mktemp("prometheus"), scrape_interval="1s").start()
    yield stack
    stack.stop()


def wait_until(check: Callable[[], object], timeout_s: float = 45.0, every_s: float = 0.25) -> object:
    """Poll ``check`` until it returns something truthy (first data in a fresh Prometheus takes ~5 s)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s} s; last result: {last!r}")
