"""Slack's mrkdwn control characters: user-supplied names must not become mentions or links."""

from __future__ import annotations

__all__ = ["escape"]


def escape(text: object) -> str:
    """``&``, ``<`` and ``>`` as Slack's HTML entities, so a rule named ``<!channel>`` pings nobody.

    Slack shows the entities as the characters they stand for; only these three need escaping.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
