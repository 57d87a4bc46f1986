"""``autopilot alerts evaluate|list|notify|silence|silences|unsilence``: the alerting engine from the command line.

``evaluate`` runs one evaluation (what the every-minute schedule does), ``list`` shows the rules, what is
pending or firing and the latest history, ``notify`` sends pending Slack notifications now; ``silence``,
``silences`` and ``unsilence`` manage maintenance windows (:mod:`._silences`).
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime

from autopilot_pipeline.commands import _silences
from autopilot_pipeline.errors import AutopilotError


def register(subparsers: argparse._SubParsersAction) -> None:
    alerts = subparsers.add_parser("alerts", help="alert rules: evaluate now, list state and history, notify")
    actions = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    evaluate = actions.add_parser("evaluate", help="evaluate every enabled rule once and print the outcome")
    evaluate.add_argument("--at", metavar="TIME", help="ISO-8601 evaluation time with zone (default: now)")
    evaluate.set_defaults(handler=_evaluate)
    show = actions.add_parser("list", help="rules, pending and firing alerts, recent history")
    show.add_argument(
        "--history", type=int, default=10, metavar="N", help="history rows to show (default 10)"
    )
    show.set_defaults(handler=_list)
    notify = actions.add_parser("notify", help="send pending notifications to SLACK_WEBHOOK_URL now")
    notify.set_defaults(handler=_notify)
    _silences.register(actions)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise AutopilotError(f"--at: not an ISO-8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise AutopilotError("--at needs a time zone, e.g. 2026-03-02T12:00:00+00:00")
    return moment


def _print_frame(title: str, frame: object) -> None:
    import polars as pl
    from rich.console import Console
    from rich.table import Table

    assert isinstance(frame, pl.DataFrame)
    console = Console()
    if frame.height == 0:
        console.print(f"{title}: none")
        return
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column)
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def _evaluate(args: argparse.Namespace) -> int:
    from autopilot_pipeline.alerting.engine import evaluate_alert_rules
    from autopilot_pipeline.postgres import migrate, server

    at = _time(args.at)
    db = server.resolve()
    try:
        migrate.migrate(db.url)
        with server.connect(db.url, autocommit=True) as conn:
            result = evaluate_alert_rules(conn, at)
    finally:
        server.release(db)
    if result.refused:
        raise AutopilotError(result.refused)
    print(
        f"evaluated {result.rules_evaluated} rule(s) over {result.instances_evaluated} instance(s) at "
        f"{result.evaluated_at:%Y-%m-%d %H:%M:%S} UTC in {result.duration_ms:.0f} ms: {result.firing} firing "
        f"({result.fired.height} new), {result.pending} pending, {result.resolved.height} resolved"
    )
    _print_frame("Pending and firing", result.instances.drop("rule_id"))
    _print_frame("Skipped rules", result.skipped)
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from autopilot_pipeline.postgres import server
    from autopilot_pipeline.postgres.io import read_frame

    with server.session() as conn:
        rules = read_frame(
            conn,
            "SELECT r.id, r.name, r.metric_name || ' ' || r.condition || ' ' || r.threshold, "
            "r.duration_minutes, "
            "r.severity, r.enabled, r.notify_slack, count(*) FILTER (WHERE s.state = 'pending'), "
            "count(*) FILTER (WHERE s.state = 'firing') FROM automation.alert_rules r "
            "LEFT JOIN automation.alert_state s ON s.rule_id = r.id GROUP BY r.id ORDER BY r.id",
            None,
            _schema("id:i name:s condition:s for_min:i severity:s enabled:b slack:b pending:i firing:i"),
        )
        history = read_frame(
            conn,
            "SELECT rule_name, target, component, status, value, to_char(fired_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD HH24:MI'), to_char(resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
            "suppressed, notified_at IS NOT NULL FROM automation.alert_history ORDER BY fired_at DESC, "
            "id DESC "
            "LIMIT %s",
            (args.history,),
            _schema(
                "rule:s target:s component:s status:s value:f fired_utc:s resolved_utc:s muted:b notified:b"
            ),
        )
    _print_frame("Alert rules", rules)
    _print_frame(f"Latest {args.history} firings", history)
    return 0


def _schema(spec: str) -> dict:
    import polars as pl

    types = {"i": pl.Int64(), "s": pl.String(), "b": pl.Boolean(), "f": pl.Float64()}
    return {name: types[kind] for name, kind in (item.split(":") for item in spec.split())}


def _notify(args: argparse.Namespace) -> int:
    from autopilot_pipeline.alerting.notifications import send_pending_notifications
    from autopilot_pipeline.integrations.slack import SlackWebhook
    from autopilot_pipeline.postgres import server

    url = os.environ.get("SLACK_WEBHOOK_URL", "").strip()
    if not url:
        raise AutopilotError("SLACK_WEBHOOK_URL is not set")
    try:
        webhook = SlackWebhook(url)
    except ValueError as exc:
        raise AutopilotError(f"SLACK_WEBHOOK_URL: {exc}") from exc
    with server.session(autocommit=True) as conn:
        report = send_pending_notifications(conn, webhook)
    print(
        f"{report.messages_sent} message(s) sent: {report.firing_notified} firing, "
        f"{report.resolved_notified} "
        f"resolved; {report.muted} muted, {report.still_pending} still pending"
    )
    if report.error:
        raise AutopilotError(report.error)
    return 0
