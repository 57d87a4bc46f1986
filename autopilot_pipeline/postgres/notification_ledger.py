"""The notification ledger (``automation.alert_notifications``): record before sending, settle after.

A notifier pass holds a session-level advisory lock for its whole duration (records are committed before
the POST, so a transaction-scoped lock would be released too early). A ``sending`` record found by the next
pass therefore belongs to a notifier that died between recording and settling: it may have reached Slack,
so it is settled as ``unconfirmed`` and its alerts are marked notified, never resent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import psycopg

_LOCK = "SELECT pg_try_advisory_lock(hashtext('autopilot.alert_notify_session'))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext('autopilot.alert_notify_session'))"


def try_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute(_LOCK).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection) -> None:
    conn.execute(_UNLOCK)


def record(
    conn: psycopg.Connection,
    firing_ids: Sequence[int],
    repeat_ids: Sequence[int],
    resolved_ids: Sequence[int],
    due_at: datetime,
) -> uuid.UUID:
    """Record one message's notifications as ``sending``; returns its message id."""
    message_id = uuid.uuid4()
    rows = [
        *((i, "firing") for i in firing_ids),
        *((i, "repeat") for i in repeat_ids),
        *((i, "resolved") for i in resolved_ids),
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO automation.alert_notifications (message_id, history_id, transition, due_at) "
            "VALUES (%s, %s, %s, %s)",
            [(message_id, history_id, transition, due_at) for history_id, transition in rows],
        )
    return message_id


def settle(
    conn: psycopg.Connection, message_id: uuid.UUID, status: str, attempts: int, error: str | None
) -> None:
    conn.execute(
        "UPDATE automation.alert_notifications SET status = %s, attempts = %s, error = %s, "
        "finished_at = clock_timestamp() WHERE message_id = %s",
        (status, attempts, error, message_id),
    )


def interrupted(conn: psycopg.Connection) -> list[tuple[int, str, datetime]]:
    """(history_id, transition, due_at) of records left ``sending`` by a notifier that died; settled as
    ``unconfirmed`` by this call."""
    return conn.execute(
        "UPDATE automation.alert_notifications SET status = 'unconfirmed', finished_at = clock_timestamp(), "
        "error = 'the notifier stopped while sending; not resent' WHERE status = 'sending' "
        "RETURNING history_id, transition, due_at"
    ).fetchall()
