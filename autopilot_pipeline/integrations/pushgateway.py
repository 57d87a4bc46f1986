"""Push to a Prometheus Pushgateway: a PUT of a whole registry, with retries and no credentials in errors.

The PUT replaces the whole group (``job`` and the grouping key, e.g. ``target``) on the gateway, so a
component that is no longer reported disappears instead of keeping its last value, and one target's push
leaves the other targets' groups alone. The registry comes from
:func:`autopilot_pipeline.metrics.exposition.build_registry`.
"""

from __future__ import annotations

import re
import time
import urllib.error
from collections.abc import Callable

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

__all__ = ["JOB", "PushError", "display_url", "push"]

JOB = "autopilot"


class PushError(Exception):
    """The push failed after its retries; the message is one line without credentials."""


_CREDENTIALS = re.compile(r"//[^/@\s]*@")


def display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part."""
    return _CREDENTIALS.sub("//", url)


def push(
    registry: CollectorRegistry,
    url: str,
    job: str = JOB,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
    attempts: int = 3,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    grouping_key: dict[str, str] | None = None,
) -> int:
    """PUT ``registry`` as group ``job`` + ``grouping_key`` (replacing it); the attempts used, or
    :class:`PushError`."""
    if username:

        def handler(
            url: str, method: str, timeout: float | None, headers: list, data: bytes
        ) -> Callable[[], None]:
            return basic_auth_handler(url, method, timeout, headers, data, username, password or "")
    else:
        handler = default_handler
    reason = ""
    for attempt in range(1, attempts + 1):
        try:
            push_to_gateway(
                url, job=job, registry=registry, timeout=timeout_s, handler=handler, grouping_key=grouping_key
            )
            return attempt
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            reason = str(exc.reason)
        except OSError as exc:  # prometheus-client raises OSError for a non-2xx answer
            reason = " ".join(str(exc).split())
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    raise PushError(f"push to Pushgateway {display_url(url)} failed after {attempts} attempts: {reason}")
