"""User-facing errors: the CLI prints their message as one line, never a traceback."""

import re

# user:password@ up to the LAST '@' of the token: a password may itself contain '@' (or ':' and '/').
_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-z0-9+.\-]+://[^:/@\s]*):[^\s]*@", re.IGNORECASE)
_PASSWORD_IN_CONNINFO = re.compile(r"(?P<key>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class AutopilotError(Exception):
    """An error a user can fix; its message is shown as is."""


def redact(text: str) -> str:
    """Replace passwords in any database URL or libpq conninfo inside ``text`` with ``***``."""
    text = _PASSWORD_IN_URL.sub(r"\g<scheme>:***@", text)
    return _PASSWORD_IN_CONNINFO.sub(r"\g<key>***", text)
