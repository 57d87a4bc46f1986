"""The alerting engine's database edge: bulk reads of rules, states, suppressions and metric windows; the
writes of one evaluation (states, opened and closed history rows, the evaluation log); the notification
outbox.

Reads go through COPY into polars (``io.read_frame``) over short windows on indexed timestamps; writes
are set-based (COPY into a temporary table, then one INSERT/UPDATE), all in the caller's transaction.
Metric names and rule names are only ever bound as parameters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.alerting import metric_catalog as catalog
from autopilot_pipeline.alerting.state_machine import STATE_SCHEMA
from autopilot_pipeline.alerting.suppressions import Suppression
from autopilot_pipeline.health import store as sources
from autopilot_pipeline.health.tables import AI_OPS_SOURCE
from autopilot_pipeline.postgres.io import bulk_session, copy_frame, epoch_us, read_frame

TS = pl.Datetime("us", "UTC")
_US = timedelta(microseconds=1)

PREDICTIONS_TABLE = ("analytics", "failure_predictions")
PREDICTION_COLUMNS = {"predicted_at", "component", "metric", "probability"}

RULE_COLUMNS: dict[str, pl.DataType] = {
    "rule_id": pl.Int64(),
    "name": pl.String(),
    "description": pl.String(),
    "metric_name": pl.String(),
    "condition": pl.String(),
    "threshold": pl.Float64(),
    "duration_minutes": pl.Int64(),
    "severity": pl.String(),
    "notify_slack": pl.Boolean(),
    "enabled": pl.Boolean(),
    "recovery_threshold": pl.Float64(),
    "keep_firing_for_minutes": pl.Int64(),
    "no_data_policy": pl.String(),
    "repeat_interval_minutes": pl.Int64(),
}
STORED_STATE_SCHEMA: dict[str, pl.DataType] = {**STATE_SCHEMA, "last_notified_at": TS, "target": pl.String()}
DEFAULT_TARGET = "default"

# ------------------------------------------------------------------------------------------------ engine


def lock_engine(conn: psycopg.Connection) -> None:
    """Serialize evaluators (two schedule ticks, a CLI call): held until the caller's transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('autopilot.alert_engine'))")


def last_evaluated_at(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute("SELECT max(evaluated_at) FROM automation.alert_evaluations").fetchone()
    return row[0] if row else None


def read_rules(conn: psycopg.Connection) -> pl.DataFrame:
    """Every rule (enabled or not), as :data:`RULE_COLUMNS`."""
    columns = [c if c != "rule_id" else "id" for c in RULE_COLUMNS]
    query = sql.SQL("SELECT {} FROM automation.alert_rules ORDER BY id").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    return read_frame(conn, query, None, RULE_COLUMNS)


def rule_scopes(conn: psycopg.Connection, rule_ids: list[int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(scopes, problems)``: ``(rule_id, target)`` for each target a rule applies to (NULL: every
    registered target; a name: that target), and ``(rule_id, reason)`` of rules naming an unknown target."""
    rows = conn.execute(
        "SELECT r.id, t.name, r.target FROM automation.alert_rules r "
        "LEFT JOIN automation.targets t ON r.target IS NULL OR t.name = r.target "
        "WHERE r.id = ANY(%s) ORDER BY r.id, t.name",
        (rule_ids,),
    ).fetchall()
    scopes = [(rule_id, target) for rule_id, target, _ in rows if target is not None]
    problems = [
        (rule_id, f"unknown target '{named}' (see `autopilot targets list`)")
        for rule_id, target, named in rows
        if target is None and named is not None
    ]
    return (
        pl.DataFrame(scopes, schema={"rule_id": pl.Int64(), "target": pl.String()}, orient="row"),
        pl.DataFrame(problems, schema={"rule_id": pl.Int64(), "reason": pl.String()}, orient="row"),
    )


def read_states(conn: psycopg.Connection) -> pl.DataFrame:
    """Stored instances (pending and firing ones, and inactive ones of ``no_data_policy = 'alert'`` rules)."""
    timestamps = [c for c, t in STORED_STATE_SCHEMA.items() if isinstance(t, pl.Datetime)]
    columns = [epoch_us(c) if c in timestamps else sql.Identifier(c) for c in STORED_STATE_SCHEMA]
    query = sql.SQL("SELECT {} FROM automation.alert_state").format(sql.SQL(", ").join(columns))
    return read_frame(conn, query, None, STORED_STATE_SCHEMA, timestamps)


def read_suppressions(conn: psycopg.Connection) -> list[Suppression]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(
            "SELECT id, rule_id, starts_at, ends_at, weekdays, start_time, end_time, timezone, reason, "
            "created_by, target FROM automation.alert_suppressions ORDER BY id"
        ).fetchall()
    return [Suppression.from_row(row) for row in rows]


def add_suppression(conn: psycopg.Connection, window: Suppression) -> Suppression:
    """Store ``window`` (its ``id`` is ignored; ``created_by`` None: the database user); returns it with its id."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(
            "INSERT INTO automation.alert_suppressions (rule_id, target, starts_at, ends_at, weekdays, "
            "start_time, end_time, timezone, reason, created_by) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, current_user)) "
            "RETURNING id, rule_id, starts_at, ends_at, weekdays, start_time, end_time, timezone, reason, "
            "created_by, target",
            (
                window.rule_id,
                window.target,
                window.starts_at,
                window.ends_at,
                None if window.weekdays is None else list(window.weekdays),
                window.start_time,
                window.end_time,
                window.timezone,
                window.reason,
                window.created_by,
            ),
        ).fetchone()
    assert row is not None
    return Suppression.from_row(row)


def delete_suppression(conn: psycopg.Connection, suppression_id: int) -> bool:
    """Remove a window (history rows keep ``suppressed``; their ``suppression_id`` becomes NULL)."""
    return (
        conn.execute("DELETE FROM automation.alert_suppressions WHERE id = %s", (suppression_id,)).rowcount
        > 0
    )


def sampled_metric_names(conn: psycopg.Connection, names: Sequence[str]) -> set[str]:
    """Which of ``names`` occur in ``metric_samples`` at all (one index probe per name)."""
    if not names:
        return set()
    rows = conn.execute(
        "SELECT n FROM unnest(%s::text[]) AS n "
        "WHERE EXISTS (SELECT 1 FROM automation.metric_samples s WHERE s.metric_name = n)",
        (list(names),),
    ).fetchall()
    return {r[0] for r in rows}


def predictions_available(conn: psycopg.Connection) -> bool:
    """Whether the AI-ops predictions table exists with the columns the catalog reads."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        PREDICTIONS_TABLE,
    ).fetchall()
    return {r[0] for r in rows} >= PREDICTION_COLUMNS


def _read_anomalies(
    conn: psycopg.Connection, start: datetime, end: datetime, target: str = DEFAULT_TARGET
) -> pl.DataFrame:
    """AI-ops findings of ``target``: the default target's are logged into ``automation.health_log`` (the seed's
    place); other targets' only into ``analytics.anomalies``, read as if logged (an hour's bucket is checked at
    its end)."""
    if target != DEFAULT_TARGET:
        query = sql.SQL(
            "SELECT {checked}, component, metric, confidence::text FROM analytics.anomalies "
            "WHERE target = %s AND is_anomaly AND bucket_start + interval '1 hour' >= %s "
            "AND bucket_start + interval '1 hour' < %s"
        ).format(checked=sql.SQL("(extract(epoch FROM bucket_start + interval '1 hour') * 1000000)::bigint"))
        return read_frame(conn, query, (target, start, end), catalog.ANOMALY_SCHEMA, ("checked_at",))
    query = sql.SQL(
        "SELECT {checked}, metadata->>'component', metadata->>'metric', metadata->>'confidence' "
        "FROM automation.health_log WHERE source = %s AND kind = 'anomaly' AND checked_at >= %s AND "
        "checked_at < %s"
    ).format(checked=epoch_us("checked_at"))
    return read_frame(conn, query, (AI_OPS_SOURCE, start, end), catalog.ANOMALY_SCHEMA, ("checked_at",))


def _read_predictions(
    conn: psycopg.Connection, start: datetime, end: datetime, target: str = DEFAULT_TARGET
) -> pl.DataFrame:
    query = sql.SQL(
        "SELECT {at}, component, metric, probability FROM {table} WHERE target = %s AND predicted_at >= %s "
        "AND predicted_at < %s"
    ).format(at=epoch_us("predicted_at"), table=sql.Identifier(*PREDICTIONS_TABLE))
    return read_frame(conn, query, (target, start, end), catalog.PREDICTION_SCHEMA, ("predicted_at",))


def read_metric_inputs(
    conn: psycopg.Connection,
    needed: Iterable[catalog.Source],
    now: datetime,
    target: str = DEFAULT_TARGET,
    source: psycopg.Connection | None = None,
) -> catalog.MetricInputs:
    """The windows ``(now - window, now]`` of ``target``'s sources in ``needed``; predictions are None when
    the AI-ops table does not exist yet.

    Health checks, samples and migrations are read from ``source`` (the target's own database; default:
    ``conn``), the AI-ops results from ``conn``, where the pipeline writes them under the target's name."""
    source = conn if source is None else source
    needed = set(needed)
    end = now + _US  # readers take [start, end): make the evaluation instant inclusive
    frames: dict[str, pl.DataFrame | None] = {}
    readers = {
        catalog.Source.HEALTH: ("health", sources.read_health_window),
        catalog.Source.MIGRATIONS: ("migrations", sources.read_migrations_window),
        catalog.Source.SAMPLES: ("samples", sources.read_samples_window),
    }
    with bulk_session():  # one bulk connection to the target's database for all its windows
        for kind, (field, reader) in readers.items():
            if kind in needed:
                frames[field] = reader(source, now - catalog.window_for(kind) + _US, end)
    if catalog.Source.ANOMALIES in needed:
        window = catalog.window_for(catalog.Source.ANOMALIES)
        frames["anomalies"] = _read_anomalies(conn, now - window + _US, end, target)
    if catalog.Source.PREDICTIONS in needed and predictions_available(conn):
        frames["predictions"] = _read_predictions(
            conn, now - catalog.window_for(catalog.Source.PREDICTIONS) + _US, end, target
        )
    return catalog.MetricInputs(now=now, **frames)  # type: ignore[arg-type]


def apply_state_changes(conn: psycopg.Connection, removed: pl.DataFrame, upserts: pl.DataFrame) -> None:
    """Delete the instances ``removed`` (rule_id, target, component) and write ``upserts`` (whole rows,
    replacing any stored row with the same key): the write of one evaluation is proportional to its
    transitions."""
    key = ["rule_id", "target", "component"]
    keys = pl.concat([removed.select(key), upserts.select(key)])
    if keys.height:
        conn.execute(
            "DELETE FROM automation.alert_state s USING unnest(%s::bigint[], %s::text[], %s::text[]) AS "
            "k(rule_id, target, component) "
            "WHERE s.rule_id = k.rule_id AND s.target = k.target AND s.component = k.component",
            (keys["rule_id"].to_list(), keys["target"].to_list(), keys["component"].to_list()),
        )
    copy_frame(conn, "automation.alert_state", upserts.select(list(STORED_STATE_SCHEMA)))


_FIRED_COLUMNS = [
    "rule_id",
    "rule_name",
    "target",
    "component",
    "severity",
    "value",
    "threshold",
    "message",
    "fired_at",
    "suppressed",
    "suppression_id",
    "metadata",
]


def insert_fired(conn: psycopg.Connection, fired: pl.DataFrame) -> int:
    """Open a firing history row per fired instance (an instance already open keeps its row)."""
    if fired.height == 0:
        return 0
    conn.execute(
        "CREATE TEMP TABLE _alert_fired (rule_id bigint, rule_name text, target text, component text, "
        "severity text, "
        "value double precision, threshold double precision, message text, fired_at timestamptz, "
        "suppressed boolean, suppression_id bigint, metadata jsonb) ON COMMIT DROP"
    )
    copy_frame(conn, "pg_temp._alert_fired", fired.select(_FIRED_COLUMNS))
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in _FIRED_COLUMNS)
    cur = conn.execute(
        sql.SQL(
            "INSERT INTO automation.alert_history ({cols}) SELECT {cols} FROM _alert_fired "
            "ON CONFLICT (rule_id, target, component) WHERE status = 'firing' DO NOTHING"
        ).format(cols=cols)
    )
    conn.execute("DROP TABLE _alert_fired")
    return cur.rowcount


def close_resolved(conn: psycopg.Connection, resolved: pl.DataFrame) -> int:
    """Close the open history row of each resolved instance (rule_id, target, component, resolved_at,
    resolved_value, resolution, resolved_suppressed)."""
    if resolved.height == 0:
        return 0
    conn.execute(
        "CREATE TEMP TABLE _alert_resolved (rule_id bigint, target text, component text, resolved_at timestamptz, "
        "resolved_value double precision, resolution text, resolved_suppressed boolean) ON COMMIT DROP"
    )
    copy_frame(
        conn,
        "pg_temp._alert_resolved",
        resolved.select(
            "rule_id",
            "target",
            "component",
            "resolved_at",
            "resolved_value",
            "resolution",
            "resolved_suppressed",
        ),
    )
    cur = conn.execute(
        "UPDATE automation.alert_history h SET status = 'resolved', resolved_at = r.resolved_at, "
        "resolved_value = r.resolved_value, resolution = r.resolution, resolved_suppressed = "
        "r.resolved_suppressed "
        "FROM _alert_resolved r WHERE h.rule_id = r.rule_id AND h.target = r.target AND h.component = "
        "r.component AND h.status = 'firing'"
    )
    conn.execute("DROP TABLE _alert_resolved")
    return cur.rowcount


def close_orphans(conn: psycopg.Connection, now: datetime, disabled_rule_ids: Sequence[int]) -> int:
    """Resolve open rows of deleted or disabled rules and forget those rules' instances."""
    ids = list(disabled_rule_ids)
    conn.execute("DELETE FROM automation.alert_state WHERE rule_id = ANY(%s)", (ids,))
    cur = conn.execute(
        "UPDATE automation.alert_history SET status = 'resolved', resolved_at = %s, "
        "resolution = CASE WHEN rule_id IS NULL THEN 'rule deleted' ELSE 'rule disabled' END "
        "WHERE status = 'firing' AND (rule_id IS NULL OR rule_id = ANY(%s))",
        (now, ids),
    )
    return cur.rowcount


def close_out_of_scope(conn: psycopg.Connection, now: datetime, scopes: pl.DataFrame) -> int:
    """Resolve open rows, and forget instances, of enabled rules on a target they no longer apply to (the
    target was removed, or the rule now names another one); ``scopes`` holds the (rule_id, target) pairs
    that still apply. Disabled and deleted rules are :func:`close_orphans`' business."""
    pairs = (scopes["rule_id"].to_list(), scopes["target"].to_list())
    stale = (
        "{table}.rule_id IN (SELECT id FROM automation.alert_rules WHERE enabled) AND NOT EXISTS "
        "(SELECT 1 FROM unnest(%s::bigint[], %s::text[]) AS k(rule_id, target) "
        "WHERE k.rule_id = {table}.rule_id AND k.target = {table}.target)"
    )
    conn.execute(
        "DELETE FROM automation.alert_state WHERE " + stale.format(table="automation.alert_state"), pairs
    )
    cur = conn.execute(
        "UPDATE automation.alert_history SET status = 'resolved', resolved_at = %s, "
        "resolution = 'target no longer watched' WHERE status = 'firing' AND "
        + stale.format(table="automation.alert_history"),
        (now, *pairs),
    )
    return cur.rowcount


EVALUATION_RETENTION = timedelta(days=30)


def log_evaluation(
    conn: psycopg.Connection, now: datetime, counts: dict[str, int], skipped: list[dict], duration_ms: float
) -> None:
    conn.execute(
        "INSERT INTO automation.alert_evaluations (evaluated_at, rules_evaluated, rules_skipped, instances, "
        "pending, firing, fired, resolved, skipped, duration_ms) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
        (
            now,
            counts["rules_evaluated"],
            counts["rules_skipped"],
            counts["instances"],
            counts["pending"],
            counts["firing"],
            counts["fired"],
            counts["resolved"],
            json.dumps(skipped),
            duration_ms,
        ),
    )
    conn.execute(
        "DELETE FROM automation.alert_evaluations WHERE evaluated_at < %s", (now - EVALUATION_RETENTION,)
    )


# ----------------------------------------------------------------------------------------- notifications

PENDING_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "rule_id": pl.Int64(),
    "rule_name": pl.String(),
    "component": pl.String(),
    "severity": pl.String(),
    "status": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "message": pl.String(),
    "fired_at": TS,
    "resolved_at": TS,
    "resolved_value": pl.Float64(),
    "notified_at": TS,
    "last_notified_at": TS,
    "suppressed": pl.Boolean(),
    "metric_name": pl.String(),
    "condition": pl.String(),
    "duration_minutes": pl.Int64(),
}
#: What :func:`read_pending_notifications` returns: the pending rows and the target each alert is about.
PENDING_TARGET_SCHEMA: dict[str, pl.DataType] = {**PENDING_SCHEMA, "target": pl.String()}


def lock_notifier(conn: psycopg.Connection) -> bool:
    """Try to become the only notifier until the caller's transaction ends (False: another one runs)."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('autopilot.alert_notify'))").fetchone()
    return bool(row and row[0])


def read_pending_notifications(
    conn: psycopg.Connection, now: datetime, default_repeat: timedelta, max_age: timedelta
) -> pl.DataFrame:
    """History rows of ``notify_slack`` rules that Slack has not been told about yet, described as the engine
    recorded them when they fired (``alert_history.metadata``: metric, condition, duration), so editing a rule
    never rewrites the story of an alert already raised.

    Firing rows never notified, or last notified a repeat interval ago; resolved rows whose resolution is
    unannounced, not muted, not older than ``max_age``, and whose firing was announced or not muted.
    """
    ts = ["fired_at", "resolved_at", "notified_at", "last_notified_at"]
    query = sql.SQL(
        "SELECT h.id, h.rule_id, h.rule_name, h.component, h.severity, h.status, h.value, h.threshold, "
        "h.message, "
        "{fired}, {resolved}, h.resolved_value, {notified}, {last_notified}, h.suppressed, "
        # what the engine recorded when the alert fired, not the rule as it reads now
        "coalesce(h.metadata->>'metric_name', r.metric_name), coalesce(h.metadata->>'condition', r.condition), "
        "coalesce((h.metadata->>'duration_minutes')::int, r.duration_minutes), h.target "
        "FROM automation.alert_history h JOIN automation.alert_rules r ON r.id = h.rule_id "
        "WHERE r.notify_slack AND ("
        " (h.status = 'firing' AND h.fired_at <= %(now)s AND (h.last_notified_at IS NULL OR "
        "h.last_notified_at"
        "   <= %(now)s - make_interval(mins => coalesce(r.repeat_interval_minutes, %(repeat)s))))"
        " OR (h.status = 'resolved' AND h.resolved_notified_at IS NULL AND NOT h.resolved_suppressed"
        "   AND (h.notified_at IS NOT NULL OR NOT h.suppressed)"
        "   AND h.resolved_at > %(oldest)s AND h.resolved_at <= %(now)s)"
        ") ORDER BY h.fired_at, h.id"
    ).format(
        fired=sql.SQL("(extract(epoch FROM h.fired_at) * 1000000)::bigint"),
        resolved=sql.SQL("(extract(epoch FROM h.resolved_at) * 1000000)::bigint"),
        notified=sql.SQL("(extract(epoch FROM h.notified_at) * 1000000)::bigint"),
        last_notified=sql.SQL("(extract(epoch FROM h.last_notified_at) * 1000000)::bigint"),
    )
    params = {"now": now, "repeat": int(default_repeat / timedelta(minutes=1)), "oldest": now - max_age}
    return read_frame(conn, query, params, PENDING_TARGET_SCHEMA, ts)


def mark_notified(
    conn: psycopg.Connection, firing_ids: Sequence[int], resolved_ids: Sequence[int], now: datetime
) -> None:
    if firing_ids:
        conn.execute(
            "UPDATE automation.alert_history SET notified_at = coalesce(notified_at, %(now)s), "
            "last_notified_at = %(now)s, notify_attempts = 0, last_notify_error = NULL WHERE id = "
            "ANY(%(ids)s)",
            {"now": now, "ids": list(firing_ids)},
        )
        conn.execute(
            "UPDATE automation.alert_state s SET last_notified_at = %(now)s FROM automation.alert_history h "
            "WHERE h.id = ANY(%(ids)s) AND s.rule_id = h.rule_id AND s.target = h.target AND "
            "s.component = h.component",
            {"now": now, "ids": list(firing_ids)},
        )
    if resolved_ids:
        conn.execute(
            "UPDATE automation.alert_history SET resolved_notified_at = %s, notify_attempts = 0, "
            "last_notify_error = NULL WHERE id = ANY(%s)",
            (now, list(resolved_ids)),
        )


def mark_failed(conn: psycopg.Connection, ids: Sequence[int], error: str) -> None:
    conn.execute(
        "UPDATE automation.alert_history SET notify_attempts = notify_attempts + 1, last_notify_error = %s "
        "WHERE id = ANY(%s)",
        (error, list(ids)),
    )


def firing_alerts(
    conn: psycopg.Connection, target: str | None = None
) -> list[tuple[str, str, str, float | None]]:
    """(severity, rule, component, value) of alerts firing now on ``target`` (None: any), most severe first."""
    return conn.execute(
        "SELECT severity, rule_name, component, value FROM automation.active_alerts "
        "WHERE %(target)s::text IS NULL OR target = %(target)s "
        "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, rule_name, component",
        {"target": target},
    ).fetchall()


# ------------------------------------------------------------------------------------ notification ledger
# The notification ledger (``automation.alert_notifications``): record before sending, settle after.
#
# A notifier pass holds a session-level advisory lock for its whole duration (records are committed before
# the POST, so a transaction-scoped lock would be released too early). A ``sending`` record found by the next
# pass therefore belongs to a notifier that died between recording and settling: it may have reached Slack,
# so it is settled as ``unconfirmed`` and its alerts are marked notified, never resent.

_NOTIFY_LOCK = "SELECT pg_try_advisory_lock(hashtext('autopilot.alert_notify_session'))"
_NOTIFY_UNLOCK = "SELECT pg_advisory_unlock(hashtext('autopilot.alert_notify_session'))"


def try_lock_notifications(conn: psycopg.Connection) -> bool:
    row = conn.execute(_NOTIFY_LOCK).fetchone()
    return bool(row and row[0])


def unlock_notifications(conn: psycopg.Connection) -> None:
    conn.execute(_NOTIFY_UNLOCK)


def record_notification(
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


def settle_notification(
    conn: psycopg.Connection, message_id: uuid.UUID, status: str, attempts: int, error: str | None
) -> None:
    conn.execute(
        "UPDATE automation.alert_notifications SET status = %s, attempts = %s, error = %s, "
        "finished_at = clock_timestamp() WHERE message_id = %s",
        (status, attempts, error, message_id),
    )


def interrupted_notifications(conn: psycopg.Connection) -> list[tuple[int, str, datetime]]:
    """(history_id, transition, due_at) of records left ``sending`` by a notifier that died; settled as
    ``unconfirmed`` by this call."""
    return conn.execute(
        "UPDATE automation.alert_notifications SET status = 'unconfirmed', finished_at = clock_timestamp(), "
        "error = 'the notifier stopped while sending; not resent' WHERE status = 'sending' "
        "RETURNING history_id, transition, due_at"
    ).fetchall()
