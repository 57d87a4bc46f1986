"""User-facing errors: the CLI prints their message as one line, never a traceback."""

import re

_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-z0-9+]+://[^:/@\s]+):[^@\s]*@", re.IGNORECASE)


class AutopilotError(Exception):
    """An error a user can fix; its message is shown as is."""


def redact(text: str) -> str:
    """Replace passwords in any database URL inside ``text`` with ``***``."""
    return _PASSWORD_IN_URL.sub(r"\g<scheme>:***@", text)
