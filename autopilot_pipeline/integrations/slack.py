"""Slack incoming webhooks: one POST with a timeout, retried with exponential backoff, never raising.

A failed delivery comes back as a :class:`Delivery` with a one-line reason, so callers (the alert
notifier, AI-ops summaries) keep their own state and simply try again later. Errors never contain the
webhook URL: it is a secret.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

__all__ = ["Delivery", "SlackResource", "SlackWebhook"]

_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    attempts: int
    error: str | None = None


class SlackWebhook:
    """POST JSON payloads to one webhook URL.

    Retries connection errors, timeouts, 429 (honouring ``Retry-After`` up to ``max_backoff_s``) and 5xx,
    waiting ``backoff_s``, ``2 x backoff_s``, ... between attempts; other 4xx answers are final.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("Slack webhook URL must start with http:// or https://")
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self._url = url
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep

    def _once(self, body: bytes) -> tuple[bool, bool, str | None, float | None]:
        """(ok, retryable, error, retry_after_s) of one POST."""
        request = urllib.request.Request(
            self._url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
                return True, False, None, None
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode("utf-8", "replace").strip().replace("\n", " ")
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            return (
                False,
                exc.code in _RETRYABLE_STATUS,
                f"HTTP {exc.code}" + (f": {detail}" if detail else ""),
                wait,
            )
        except TimeoutError:
            return False, True, f"timed out after {self.timeout_s:g} s", None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                return False, True, f"timed out after {self.timeout_s:g} s", None
            return False, True, f"cannot connect: {reason}", None
        except OSError as exc:  # connection reset mid-response, ...
            return False, True, f"connection error: {exc}", None

    def post(self, payload: Mapping[str, Any]) -> Delivery:
        """Deliver ``payload``; at most ``attempts`` tries. Never raises for HTTP or network failures."""
        body = json.dumps(payload).encode()
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            ok, retryable, error, retry_after = self._once(body)
            if ok:
                return Delivery(True, attempt)
            if not retryable or attempt == self.attempts:
                return Delivery(False, attempt, f"Slack webhook: {error}")
            delay = self.backoff_s * 2 ** (attempt - 1)
            self._sleep(min(self.max_backoff_s, retry_after if retry_after is not None else delay))
        return Delivery(False, self.attempts, f"Slack webhook: {error}")  # pragma: no cover - loop returns


class SlackResource(dg.ConfigurableResource):
    """The Slack webhook (``SLACK_WEBHOOK_URL`` via ``dg.EnvVar``); unset means notifications stay pending."""

    webhook_url: str | None = None
    timeout_seconds: float = 5.0
    attempts: int = 3
    backoff_seconds: float = 0.5

    def client(self) -> SlackWebhook | None:
        """A webhook client, or None when no URL is configured."""
        if not self.webhook_url:
            return None
        return SlackWebhook(
            self.webhook_url,
            timeout_s=self.timeout_seconds,
            attempts=self.attempts,
            backoff_s=self.backoff_seconds,
        )
