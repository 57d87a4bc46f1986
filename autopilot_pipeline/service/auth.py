"""The shared secret of the seed's edge functions: ``x-autopilot-sign`` or ``Authorization: Bearer``.

Compared in constant time (:func:`hmac.compare_digest` on bytes), so the answer time says nothing about how
much of a guess was right. Without a configured secret the service serves only the loopback interface
(:func:`check_bind`): an open analyzer on a public address would hand out the system's health to anyone.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

__all__ = ["SECRET_ENV", "authorized", "check_bind", "is_loopback"]

SECRET_ENV = "AUTOPILOT_SECRET"
SIGN_HEADER = "x-autopilot-sign"


def _candidates(headers: Mapping[str, str]) -> list[str]:
    found = []
    sign = headers.get(SIGN_HEADER)
    if sign is not None:
        found.append(sign)
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found.append(token.strip())
    return found


def authorized(headers: Mapping[str, str], secret: str | None) -> bool:
    """True when no secret is configured or a supplied credential equals it."""
    if not secret:
        return True
    expected = secret.encode()
    ok = False
    for candidate in _candidates(headers):
        ok |= hmac.compare_digest(candidate.encode(), expected)  # no early exit: every candidate is compared
    return ok


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, secret: str | None) -> None:
    """Raise ValueError when ``host`` is not a loopback address and no secret is configured."""
    if not secret and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without {SECRET_ENV}: set a secret, or listen on 127.0.0.1"
        )
