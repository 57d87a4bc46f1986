"""Slack notifications for alerts: grouped messages from the history outbox, at-least-once delivery.

What is pending (``alerting.store.read_pending_notifications``): instances that fired and were not
announced, firing ones last announced a repeat interval ago, and resolutions not yet announced. Pending
rows of a rule muted by an active suppression are held back (a firing one is announced when the window
ends if it is still firing; a resolution that happened inside a window is never announced).

Grouping: everything pending at one moment goes into one message, a section per (kind, rule) listing the
components, so an outage across 20 components is one message. Very large batches are split every
:data:`MAX_GROUPS_PER_MESSAGE` sections.

Delivery: each message's notifications are recorded in ``automation.alert_notifications`` and committed
before the POST (the ledger in ``alerting.store``). Slack accepted it: the rows are marked notified. It
certainly did not arrive (connection refused, 429, 5xx after the client's capped retries): the rows stay
pending with the error and the next pass sends them, so nothing is lost. It was sent but not answered
(a slow receiver, a reset), or the notifier died mid-send: logged, marked notified, never resent, so
Slack never shows a message twice. Every user-supplied name is escaped (``<!channel>`` pings nobody).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from autopilot_pipeline.alerting import store
from autopilot_pipeline.alerting import suppressions as supp
from autopilot_pipeline.integrations.slack import SlackWebhook
from autopilot_pipeline.slack_text import escape

__all__ = [
    "DEFAULT_REPEAT",
    "MAX_AGE",
    "Message",
    "NotificationReport",
    "build_messages",
    "send_pending_notifications",
]

DEFAULT_REPEAT = timedelta(hours=4)  # Alertmanager's default repeat_interval
DEFAULT_TARGET = store.DEFAULT_TARGET
MAX_AGE = timedelta(hours=24)  # resolutions older than this are no longer worth announcing
MAX_GROUPS_PER_MESSAGE = 15
MAX_COMPONENTS_LISTED = 25

_SECTIONS = {  # kind -> (order, heading)
    "firing": (0, ":red_circle: *FIRING*"),
    "repeat": (1, ":repeat: *STILL FIRING*"),
    "resolved": (2, ":large_green_circle: *RESOLVED*"),
}
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    text: str
    firing_ids: tuple[int, ...]  # history rows announced as firing (new or repeated)
    resolved_ids: tuple[int, ...]

    def payload(self) -> dict[str, Any]:
        return {"text": self.text}


def _clock(ts: datetime | None) -> str:
    return "?" if ts is None else f"{ts:%Y-%m-%d %H:%M} UTC"


def _num(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _line(kind: str, row: dict[str, Any]) -> str:
    name = f"`{escape(row['component'])}`"
    if kind == "resolved":
        return (
            f"• {name} fired {_clock(row['fired_at'])}, resolved {_clock(row['resolved_at'])} "
            f"(value {_num(row['resolved_value'])})"
        )
    return f"• {name} {_num(row['value'])} since {_clock(row['fired_at'])}"


def _group_text(kind: str, rows: list[dict[str, Any]]) -> str:
    first = rows[0]
    n = len(rows)
    rule = (
        f"{_SECTIONS[kind][1]} *{escape(first['rule_name'])}* · {escape(first['severity'])} · "
        f"{escape(first['metric_name'])} {escape(first['condition'])} {_num(first['threshold'])}"
        f"{' for ' + str(first['duration_minutes']) + ' min' if first['duration_minutes'] else ''}"
        f" · {n} component{'s' if n != 1 else ''}"
        f"{' · target `' + escape(first['target']) + '`' if first['target'] != DEFAULT_TARGET else ''}"
    )
    lines = [_line(kind, row) for row in rows[:MAX_COMPONENTS_LISTED]]
    if n > MAX_COMPONENTS_LISTED:
        lines.append(f"• … and {n - MAX_COMPONENTS_LISTED} more")
    return "\n".join([rule, *lines])


def build_messages(pending: pl.DataFrame) -> list[Message]:
    """Grouped Slack messages for deliverable pending rows (:data:`store.PENDING_SCHEMA`). Pure."""
    if pending.height == 0:
        return []
    kind = (
        pl.when(pl.col("status") == "resolved")
        .then(pl.lit("resolved"))
        .when(pl.col("notified_at").is_null())
        .then(pl.lit("firing"))
        .otherwise(pl.lit("repeat"))
    )
    if "target" not in pending.columns:
        pending = pending.with_columns(pl.lit(DEFAULT_TARGET).alias("target"))
    rows = pending.with_columns(kind.alias("kind")).sort("component").to_dicts()
    # one group per rule and target: the same rule firing on two databases is two alerts
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["kind"], row["rule_id"], row["target"]), []).append(row)
    ordered = sorted(
        groups.items(),
        key=lambda item: (
            _SECTIONS[item[0][0]][0],
            _SEVERITY_ORDER.get(item[1][0]["severity"], 9),
            item[1][0]["rule_name"],
            item[1][0]["target"] != DEFAULT_TARGET,
            item[1][0]["target"],
        ),
    )
    messages = []
    for start in range(0, len(ordered), MAX_GROUPS_PER_MESSAGE):
        chunk = ordered[start : start + MAX_GROUPS_PER_MESSAGE]
        counts = {k: sum(len(g) for (kk, _, _), g in chunk if kk == k) for k in _SECTIONS}
        summary = " · ".join(
            f"{counts[k]} {label}"
            for k, label in (("firing", "firing"), ("repeat", "still firing"), ("resolved", "resolved"))
            if counts[k]
        )
        text = "\n\n".join(
            [f"*Autopilot alerts* — {summary}", *(_group_text(k, g) for (k, _, _), g in chunk)]
        )
        firing = tuple(r["id"] for (k, _, _), g in chunk if k != "resolved" for r in g)
        resolved = tuple(r["id"] for (k, _, _), g in chunk if k == "resolved" for r in g)
        messages.append(Message(text, firing, resolved))
    return messages


@dataclass(frozen=True, slots=True)
class NotificationReport:
    messages_sent: int = 0
    firing_notified: int = 0
    resolved_notified: int = 0
    muted: int = 0
    still_pending: int = 0
    unconfirmed: int = 0  # sent without an answer (or mid-send when a notifier died): logged, not resent
    error: str | None = None
    note: str | None = None


def send_pending_notifications(
    conn: psycopg.Connection,
    webhook: SlackWebhook | None,
    now: datetime | None = None,
    default_repeat: timedelta = DEFAULT_REPEAT,
    max_age: timedelta = MAX_AGE,
    logger: logging.Logger | None = None,
) -> NotificationReport:
    """Send what is pending at ``now`` to ``webhook`` (None: Slack not configured, nothing is sent).

    ``conn`` must be in autocommit mode: records are committed before each POST.
    """
    logger = logger or log
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if not store.try_lock_notifications(conn):
        return NotificationReport(note="another notifier is running")
    try:
        return _send(conn, webhook, now, default_repeat, max_age, logger)
    finally:
        store.unlock_notifications(conn)


def _settle_interrupted(conn: psycopg.Connection, logger: logging.Logger) -> int:
    """Records a dead notifier left ``sending``: maybe posted, so marked notified, never resent."""
    left = store.interrupted_notifications(conn)
    for due_at in {d for _, _, d in left}:
        at = [(h, t) for h, t, d in left if d == due_at]
        store.mark_notified(
            conn, [h for h, t in at if t != "resolved"], [h for h, t in at if t == "resolved"], due_at
        )
    if left:
        logger.warning(
            f"{len(left)} Slack notification(s) were being sent when a notifier stopped; "
            "they may have been posted and are not resent"
        )
    return len(left)


def _send(
    conn: psycopg.Connection,
    webhook: SlackWebhook | None,
    now: datetime,
    default_repeat: timedelta,
    max_age: timedelta,
    logger: logging.Logger,
) -> NotificationReport:
    with conn.transaction():
        recovered = _settle_interrupted(conn, logger)
        pending = store.read_pending_notifications(conn, now, default_repeat, max_age)
        if pending.height == 0:
            return NotificationReport(unconfirmed=recovered)
        if webhook is None:
            return NotificationReport(
                still_pending=pending.height,
                unconfirmed=recovered,
                note="SLACK_WEBHOOK_URL is not set: notifications stay pending",
            )
        active = supp.active(store.read_suppressions(conn), now)
        muted = [  # "rule_id|target" of the muted instances' (rule, target) pairs
            f"{rid}|{target}"
            for rid, target in pending.select("rule_id", "target").unique().iter_rows()
            if supp.muting(active, rid, target) is not None
        ]
        deliverable = pending.filter(~pl.format("{}|{}", "rule_id", "target").is_in(muted))
        repeats = set(deliverable.filter(pl.col("notified_at").is_not_null())["id"].to_list())
        messages = build_messages(deliverable)
        recorded = [
            store.record_notification(
                conn,
                [i for i in m.firing_ids if i not in repeats],
                [i for i in m.firing_ids if i in repeats],
                m.resolved_ids,
                now,
            )
            for m in messages
        ]
    # committed: every notification is on record before anything is sent
    sent = firing = resolved = unconfirmed = 0
    error = None
    for message, message_id in zip(messages, recorded, strict=True):
        delivery = webhook.post(message.payload())
        ids = [*message.firing_ids, *message.resolved_ids]
        with conn.transaction():
            if delivery.ok or delivery.uncertain:
                status = "sent" if delivery.ok else "unconfirmed"
                store.settle_notification(conn, message_id, status, delivery.attempts, delivery.error)
                store.mark_notified(conn, message.firing_ids, message.resolved_ids, now)
            else:
                store.settle_notification(conn, message_id, "failed", delivery.attempts, delivery.error)
                store.mark_failed(conn, ids, delivery.error or "failed")
        if delivery.uncertain:
            logger.warning(f"{delivery.error} ({len(ids)} alert notification(s))")
            unconfirmed += len(ids)
            continue
        if not delivery.ok:
            error = delivery.error
            with conn.transaction():  # the rest was never sent: settle their records as failed too
                for later in recorded[recorded.index(message_id) + 1 :]:
                    store.settle_notification(conn, later, "failed", 0, "not sent: an earlier message failed")
            break
        sent += 1
        firing += len(message.firing_ids)
        resolved += len(message.resolved_ids)
    return NotificationReport(
        messages_sent=sent,
        firing_notified=firing,
        resolved_notified=resolved,
        muted=pending.height - deliverable.height,
        still_pending=deliverable.height - firing - resolved - unconfirmed,
        unconfirmed=unconfirmed + recovered,
        error=error,
    )
