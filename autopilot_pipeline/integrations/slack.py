"""Slack incoming webhooks: one POST with a timeout, retried only when it certainly did not arrive.

A retry is safe only when Slack cannot have seen the request: the connection was refused or never
completed, or Slack answered 429 (with ``Retry-After``) or 5xx. A timeout or a reset while waiting for
the answer is *uncertain* (Slack may have posted the message and only acknowledged slowly), so it is never
resent: the :class:`Delivery` says ``uncertain`` and the caller logs it. At most :data:`MAX_ATTEMPTS`
tries (one plus three retries), with exponential back-off.

A failed delivery comes back as a :class:`Delivery` with a one-line reason, so callers (the alert
notifier, AI-ops summaries) keep their own state. Errors never contain the webhook URL: it is a secret.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Delivery", "SlackWebhook"]

MAX_ATTEMPTS = 4  # the first try and at most three retries
_UNCERTAIN = "; it may have been posted, so it is not resent"


def _retryable_status(code: int) -> bool:
    """429 (rate limited: Slack did not post) and 5xx (Slack failed before posting)."""
    return code == 429 or 500 <= code < 600


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    attempts: int
    error: str | None = None
    uncertain: bool = False  # the request was sent but no answer came: it may have been posted


class SlackWebhook:
    """POST JSON payloads to one webhook URL.

    Retries failed connections, 429 (honouring ``Retry-After`` up to ``max_backoff_s``) and 5xx, waiting
    ``backoff_s``, ``2 x backoff_s``, ... between attempts; other 4xx answers are final, and a timeout
    after the request was sent is reported as uncertain, never resent.
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
        if not 1 <= attempts <= MAX_ATTEMPTS:
            raise ValueError(f"attempts must be between 1 and {MAX_ATTEMPTS}")
        self._url = url
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep

    def _once(self, body: bytes) -> tuple[bool, bool, str | None, float | None]:
        """(ok, retryable, error, retry_after_s) of one POST; ``retryable`` only when it did not arrive;
        an error with ``retryable`` False and no HTTP status is uncertain (see :meth:`post`).

        urllib raises ``URLError`` for failures while connecting and sending (nothing was accepted) and the
        bare ``OSError``/``TimeoutError`` for failures while waiting for the answer (it may have arrived).
        """
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
                _retryable_status(exc.code),
                f"HTTP {exc.code}" + (f": {detail}" if detail else ""),
                wait,
            )
        except urllib.error.URLError as exc:  # connecting or sending failed: Slack has nothing
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                return False, True, f"connect timed out after {self.timeout_s:g} s", None
            return False, True, f"cannot connect: {reason}", None
        except TimeoutError:
            return False, False, f"no answer within {self.timeout_s:g} s{_UNCERTAIN}", None
        except OSError as exc:  # connection reset while waiting for the answer
            return False, False, f"connection lost before the answer ({exc}){_UNCERTAIN}", None

    def post(self, payload: Mapping[str, Any]) -> Delivery:
        """Deliver ``payload``; at most ``attempts`` tries. Never raises for HTTP or network failures."""
        body = json.dumps(payload).encode()
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            ok, retryable, error, retry_after = self._once(body)
            if ok:
                return Delivery(True, attempt)
            if error and not retryable and error.endswith(_UNCERTAIN):
                return Delivery(False, attempt, f"Slack webhook: {error}", uncertain=True)
            if not retryable or attempt == self.attempts:
                return Delivery(False, attempt, f"Slack webhook: {error}")
            delay = self.backoff_s * 2 ** (attempt - 1)
            self._sleep(min(self.max_backoff_s, retry_after if retry_after is not None else delay))
        return Delivery(False, self.attempts, f"Slack webhook: {error}")  # pragma: no cover - loop returns
