"""The ``autopilot_*`` exposition for scrapers: the push's own snapshot and registry, rendered on request.

No second implementation: the caller's ``read`` returns the snapshot the Pushgateway push reads
(:func:`metrics.store.read_metrics_snapshot`), :func:`metrics.exposition.build_registry` builds the same
families, and prometheus-client's ``choose_encoder`` renders them (OpenMetrics when the scraper's ``Accept``
asks for it, text format 0.0.4 otherwise). A snapshot is ~10 small indexed queries and a rendering a few
milliseconds of CPU; both are reused for ``ttl_s`` seconds per monitored target (one refresh at a time), far
below any scrape interval, so a burst of scrapes costs the database one snapshot and the CPU one rendering per
target and format.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from autopilot_pipeline.metrics.exposition import MetricsSnapshot, build_registry
from autopilot_pipeline.postgres.targets import DEFAULT

__all__ = ["Exposition"]


@dataclass
class _Rendered:
    read_at: float  # clock() of the snapshot
    registry: CollectorRegistry
    bodies: dict[str, bytes] = field(default_factory=dict)  # per content type, until the next snapshot


class Exposition:
    """Renders a target's current snapshot; ``read(target)`` takes it from the database (and raises for an
    unknown target, which is then not cached); ``clock`` is monotonic seconds (passed in for tests)."""

    def __init__(
        self,
        read: Callable[[str], MetricsSnapshot],
        ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._rendered: dict[str, _Rendered] = {}

    def render(self, accept: str | None, target: str = DEFAULT) -> tuple[bytes, str]:
        """(body, content type) for a scrape of ``target`` with this ``Accept`` header. Series of another
        target than ``default`` carry ``target="<name>"``, as in the push; ``default``'s keep the seed's
        labels."""
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:
            now = self._clock()
            rendered = self._rendered.get(target)
            if rendered is None or now - rendered.read_at >= self._ttl_s:
                label = None if target == DEFAULT else target
                registry = build_registry(self._read(target), pushed_at=time.time(), target=label)
                rendered = self._rendered[target] = _Rendered(now, registry)
            body = rendered.bodies.get(content_type)
            if body is None:
                body = rendered.bodies[content_type] = encoder(rendered.registry)
        return body, content_type
