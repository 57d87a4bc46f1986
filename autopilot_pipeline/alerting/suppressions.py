"""Suppressions (maintenance windows): which rows of ``automation.alert_suppressions`` are active at a moment.

A suppression mutes *notifications* of one rule (``rule_id``) or of all rules (``rule_id`` NULL), on one
monitored target (``target``) or on all of them (``target`` NULL); it never changes evaluation. Two kinds,
as the table's CHECK allows:

- one-shot: active for ``starts_at <= t < ends_at``;
- recurring: on the ISO ``weekdays`` (1 = Monday) from ``start_time`` to ``end_time`` in ``timezone``. A
  window whose end is not after its start runs past midnight into the next day (22:00-02:00 on Friday
  covers Friday 22:00 to Saturday 02:00); equal times mean a full 24 hours.

Pure: the moment is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Suppression", "active", "muting", "problem"]


@dataclass(frozen=True, slots=True)
class Suppression:
    id: int
    reason: str
    rule_id: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    weekdays: tuple[int, ...] | None = None
    start_time: time | None = None
    end_time: time | None = None
    timezone: str = "UTC"
    created_by: str | None = None
    target: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Suppression:
        weekdays = row.get("weekdays")
        return cls(
            id=row["id"],
            reason=row["reason"],
            rule_id=row.get("rule_id"),
            starts_at=row.get("starts_at"),
            ends_at=row.get("ends_at"),
            weekdays=None if weekdays is None else tuple(int(d) for d in weekdays),
            start_time=row.get("start_time"),
            end_time=row.get("end_time"),
            timezone=row.get("timezone") or "UTC",
            created_by=row.get("created_by"),
            target=row.get("target"),
        )

    @property
    def recurring(self) -> bool:
        return self.weekdays is not None

    def describe(self) -> str:
        """Short human text for messages and metadata."""
        scope = "all rules" if self.rule_id is None else f"rule {self.rule_id}"
        scope += "" if self.target is None else f" on target {self.target}"
        if self.recurring:
            days = ",".join(str(d) for d in self.weekdays or ())
            when = f"weekdays {days} {self.start_time:%H:%M}-{self.end_time:%H:%M} {self.timezone}"
        else:
            when = f"{self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%Y-%m-%d %H:%M} UTC"
        return f"#{self.id} {scope}, {when}: {self.reason}"


def problem(s: Suppression) -> str | None:
    """Why a suppression can never apply (the engine logs it and ignores it), or None."""
    if s.recurring:
        if s.start_time is None or s.end_time is None:
            return "recurring window without start_time/end_time"
        try:
            ZoneInfo(s.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone {s.timezone!r}"
        if not s.weekdays or any(d < 1 or d > 7 for d in s.weekdays):
            return f"weekdays must be ISO days 1-7, got {s.weekdays}"
        return None
    if s.starts_at is None or s.ends_at is None or s.ends_at <= s.starts_at:
        return "one-shot window needs starts_at < ends_at"
    return None


def _is_active(s: Suppression, at: datetime) -> bool:
    if not s.recurring:
        assert s.starts_at is not None and s.ends_at is not None
        return s.starts_at <= at < s.ends_at
    assert s.start_time is not None and s.end_time is not None and s.weekdays is not None
    local = at.astimezone(ZoneInfo(s.timezone))
    clock, today = local.time().replace(tzinfo=None), local.isoweekday()
    yesterday = (local - timedelta(days=1)).isoweekday()
    if s.start_time < s.end_time:
        return today in s.weekdays and s.start_time <= clock < s.end_time
    # runs past midnight (or 24 h when start == end)
    return (today in s.weekdays and clock >= s.start_time) or (yesterday in s.weekdays and clock < s.end_time)


def active(suppressions: Iterable[Suppression], at: datetime) -> list[Suppression]:
    """Suppressions in force at ``at`` (aware datetime); ones with a :func:`problem` never are."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return [s for s in suppressions if problem(s) is None and _is_active(s, at)]


def muting(
    active_now: Sequence[Suppression], rule_id: int | None, target: str | None = None
) -> Suppression | None:
    """The active suppression muting ``rule_id`` on ``target``: a rule-specific one first, else a global one;
    within each, a target-specific one first. A window of one target never mutes another's alerts (nor
    one whose target is not known, ``None``)."""
    found = sorted(
        (
            s
            for s in active_now
            if (s.rule_id is None or s.rule_id == rule_id) and (s.target is None or s.target == target)
        ),
        key=lambda s: (s.rule_id is None, s.target is None, s.id),
    )
    return found[0] if found else None
