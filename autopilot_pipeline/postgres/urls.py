"""Database URL handling: one URL from the user, the driver-specific forms each consumer needs.

Users paste passwords as they are, ``@`` and ``:`` included. A URL's user info ends at the *last* ``@``
before the host (as in ``urllib.parse``), so ``postgresql://app:p@ss@db:5432/x`` means password ``p@ss``
on host ``db``; percent-encoded passwords (``p%40ss``) are decoded as usual. SQLAlchemy's ``make_url``
splits at the first ``@`` instead, which used to send the password's tail to the host name and from there
into error messages, so the user info is percent-encoded here before ``make_url`` sees it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from autopilot_pipeline.errors import AutopilotError

_EXPECTED = "expected postgresql://user:password@host:5432/database"
_SCHEME_AND_REST = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.DOTALL)


def _encode_userinfo(url: str) -> str:
    """Percent-encode user and password so that only the last ``@`` of the authority separates them."""
    match = _SCHEME_AND_REST.match(url)
    if not match:
        return url
    rest = match["rest"]
    at = _userinfo_end(rest)
    if at < 0:
        return url
    user, colon, password = rest[:at].partition(":")
    encoded = quote(unquote(user), safe="")
    if colon:
        encoded += ":" + quote(unquote(password), safe="")
    return f"{match['scheme']}://{encoded}@{rest[at + 1 :]}"


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends the user info, or -1.

    The password may contain ``/``, ``?`` or ``#``, so the last ``@`` wins; an ``@`` in the query string
    (``?options=...``) only counts when there is none before the first ``?``.
    """
    query = rest.find("?")
    if query >= 0 and "@" in rest[:query]:
        return rest.rfind("@", 0, query)
    return rest.rfind("@")


def parse(url: str) -> URL:
    """A validated ``postgresql`` URL; malformed input raises a one-line :class:`AutopilotError`."""
    if not url or not url.strip():
        raise AutopilotError(f"database URL is empty ({_EXPECTED})")
    try:
        parsed = make_url(_encode_userinfo(url.strip()))
        port = parsed.port
    except (ArgumentError, ValueError) as exc:
        raise AutopilotError(f"database URL is not valid ({_EXPECTED})") from exc
    if port is not None and not 0 < port < 65536:
        raise AutopilotError(f"database URL is not valid: port {port} is out of range ({_EXPECTED})")
    if not parsed.drivername.startswith("postgres"):
        raise AutopilotError(f"database URL must be a postgresql:// URL, got '{parsed.drivername}://'")
    return parsed.set(drivername="postgresql")


def sqlalchemy_url(url: str) -> str:
    """psycopg 3 driver for our own code."""
    return parse(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def dagster_url(url: str, database: str) -> str:
    """psycopg2 form dagster-postgres needs (FACTS trap 2), pointing at the Dagster database."""
    return (
        parse(url)
        .set(drivername="postgresql+psycopg2", database=database)
        .render_as_string(hide_password=False)
    )


def libpq_url(url: str) -> str:
    """Plain libpq URL for psycopg.connect and command-line tools (password percent-encoded)."""
    return parse(url).render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return parse(url).set(database=database).render_as_string(hide_password=False)


def display(url: str) -> str:
    """The URL for messages and logs: the password replaced by ``***``, whatever it contains."""
    try:
        return parse(url).render_as_string(hide_password=True)
    except AutopilotError:
        return "<malformed database URL>"
