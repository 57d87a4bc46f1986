"""The ``autopilot_*`` exposition for scrapers: the push's own snapshot and registry, rendered on request.

No second implementation: :func:`metrics.store.read_metrics_snapshot` reads the values the Pushgateway
push reads, :func:`integrations.pushgateway.build_registry` builds the same families, and prometheus-client's
``choose_encoder`` renders them (OpenMetrics when the scraper's ``Accept`` asks for it, text format 0.0.4
otherwise). A snapshot is ~10 small indexed queries and a rendering a few milliseconds of CPU; both are
reused for ``ttl_s`` seconds (one refresh at a time), far below any scrape interval, so a burst of scrapes
costs the database one snapshot and the CPU one rendering per format.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from autopilot_pipeline.metrics.exposition import build_registry
from autopilot_pipeline.metrics.store import read_metrics_snapshot
from autopilot_pipeline.service.pool import ConnectionPool

__all__ = ["Exposition"]


class Exposition:
    """Renders the current snapshot; ``clock`` is monotonic seconds (passed in for tests)."""

    def __init__(
        self, pool: ConnectionPool, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._read: float | None = None  # clock() of the last snapshot
        self._registry: CollectorRegistry | None = None
        self._bodies: dict[str, bytes] = {}  # rendered per content type, until the next snapshot

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type) for a scrape with this ``Accept`` header."""
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:
            now = self._clock()
            if self._read is None or now - self._read >= self._ttl_s:
                snapshot = self._pool.run(lambda conn: read_metrics_snapshot(conn, datetime.now(UTC)))
                self._registry = build_registry(snapshot, pushed_at=time.time())
                self._read, self._bodies = now, {}
            body = self._bodies.get(content_type)
            if body is None:
                body = self._bodies[content_type] = encoder(self._registry)
        return body, content_type
