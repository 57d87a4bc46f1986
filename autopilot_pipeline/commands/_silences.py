"""``autopilot alerts silence|silences|unsilence``: maintenance windows (``automation.alert_suppressions``).

A window mutes the notifications of one rule (``--rule``) or of all, on one monitored target (``--target``)
or on all; it never changes evaluation (docs/ALERTING_RULES.md, "Suppressions").
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

from autopilot_pipeline.errors import AutopilotError

if TYPE_CHECKING:
    from autopilot_pipeline.alerting.suppressions import Suppression


def register(actions: argparse._SubParsersAction) -> None:
    """Add the three actions to ``autopilot alerts``."""
    silence = actions.add_parser(
        "silence",
        help="mute notifications for a while or every week (one rule or all, one target or all)",
        description="One-shot: --until TIME [--from TIME]. Recurring: --weekdays 6,7 --start 02:00 --end 04:00 "
        "[--timezone Europe/Berlin] (an end not after the start runs past midnight).",
    )
    silence.add_argument("--reason", required=True, help="why (shown in the history and in `silences`)")
    silence.add_argument("--rule", metavar="NAME|ID", help="only this rule (default: every rule)")
    silence.add_argument(
        "--target", metavar="NAME", help="only this monitored target (default: every target)"
    )
    silence.add_argument(
        "--from", dest="starts", metavar="TIME", help="start, ISO-8601 with zone (default: now)"
    )
    silence.add_argument("--until", metavar="TIME", help="end of a one-shot window, ISO-8601 with zone")
    silence.add_argument("--weekdays", metavar="DAYS", help="recurring: ISO weekdays, 1 = Monday, e.g. 6,7")
    silence.add_argument("--start", metavar="HH:MM", help="recurring: local start time")
    silence.add_argument("--end", metavar="HH:MM", help="recurring: local end time")
    silence.add_argument("--timezone", default="UTC", help="recurring: IANA time zone (default UTC)")
    silence.set_defaults(handler=_silence)
    listing = actions.add_parser("silences", help="list the maintenance windows")
    listing.set_defaults(handler=_silences)
    unsilence = actions.add_parser("unsilence", help="delete a maintenance window by id")
    unsilence.add_argument("id", type=int)
    unsilence.set_defaults(handler=_unsilence)


def _moment(flag: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AutopilotError(f"{flag}: not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise AutopilotError(f"{flag} needs a time zone, e.g. 2026-03-02T12:00:00+00:00")
    return moment


def _clock(flag: str, text: str | None) -> time:
    try:
        return time.fromisoformat(text or "")
    except ValueError:
        raise AutopilotError(f"{flag}: not a time of day (HH:MM): {text!r}") from None


def window(args: argparse.Namespace, rule_id: int | None, now: datetime) -> Suppression:
    """The :class:`Suppression` the flags describe; a contradiction or an impossible window: one line."""
    from autopilot_pipeline.alerting.suppressions import Suppression, problem  # noqa: F811 - at run time

    recurring = args.weekdays is not None or args.start is not None or args.end is not None
    if recurring == (args.until is not None):
        raise AutopilotError("give either --until (one-shot) or --weekdays, --start and --end (recurring)")
    if recurring:
        if args.starts is not None:
            raise AutopilotError("--from belongs to a one-shot window (--until)")
        try:
            days = tuple(int(d) for d in (args.weekdays or "").split(","))
        except ValueError:
            raise AutopilotError(f"--weekdays: comma-separated ISO weekdays, got {args.weekdays!r}") from None
        found = Suppression(
            id=0,
            reason=args.reason,
            rule_id=rule_id,
            target=args.target,
            weekdays=days,
            start_time=_clock("--start", args.start),
            end_time=_clock("--end", args.end),
            timezone=args.timezone,
        )
    else:
        starts = _moment("--from", args.starts) if args.starts else now
        found = Suppression(
            id=0,
            reason=args.reason,
            rule_id=rule_id,
            target=args.target,
            starts_at=starts,
            ends_at=_moment("--until", args.until),
        )
    reason = problem(found)
    if reason:
        raise AutopilotError(f"this window can never apply: {reason}")
    return found


def _silence(args: argparse.Namespace) -> int:
    from autopilot_pipeline.alerting import store
    from autopilot_pipeline.postgres import server, targets

    if not args.reason.strip():
        raise AutopilotError("--reason must not be empty")
    with server.session(autocommit=True) as conn:
        rule_id = None
        if args.rule is not None:
            rules = store.read_rules(conn)
            found = rules.filter(
                (rules["name"] == args.rule) | (rules["rule_id"].cast(str) == args.rule.strip())
            )
            if found.height != 1:
                raise AutopilotError(f"no alert rule {args.rule!r} (see `autopilot alerts list`)")
            rule_id = int(found["rule_id"][0])
        if args.target is not None:
            targets.get_target(conn, targets.validate_name(args.target))
        added = store.add_suppression(conn, window(args, rule_id, datetime.now(UTC)))
    print(f"silence {added.describe()}")
    return 0


def _silences(args: argparse.Namespace) -> int:
    from autopilot_pipeline.alerting import store
    from autopilot_pipeline.alerting.suppressions import active
    from autopilot_pipeline.postgres import server

    with server.session() as conn:
        windows = store.read_suppressions(conn)
    now = {s.id for s in active(windows, datetime.now(UTC))}
    if not windows:
        print("no maintenance windows")
    for s in windows:
        print(f"{'active ' if s.id in now else '       '}{s.describe()}")
    return 0


def _unsilence(args: argparse.Namespace) -> int:
    from autopilot_pipeline.alerting import store
    from autopilot_pipeline.postgres import server

    with server.session(autocommit=True) as conn:
        deleted = store.delete_suppression(conn, args.id)
    if not deleted:
        raise AutopilotError(f"no maintenance window #{args.id} (see `autopilot alerts silences`)")
    print(f"deleted maintenance window #{args.id}")
    return 0
