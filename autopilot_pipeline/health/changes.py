"""What changed in ``health_log`` since a cursor: the input of the new-rows sensor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from autopilot_pipeline.health.store import AI_OPS_SOURCE

MAX_IDS_PER_TICK = 2_000_000  # bounds one sensor evaluation; the rest is picked up next tick


@dataclass(frozen=True)
class NewRows:
    hours: list[datetime]  # distinct hour buckets of the new rows, ascending
    rows: int
    last_id: int


def new_health_rows(conn: psycopg.Connection, after_id: int) -> NewRows:
    """Hours touched by rows with ``id > after_id`` (an index range scan on the primary key)."""
    upper = after_id + MAX_IDS_PER_TICK
    result = conn.execute(
        "SELECT date_trunc('hour', checked_at) AS hour, count(*), max(id) FROM automation.health_log "
        "WHERE id > %s AND id <= %s AND source <> %s GROUP BY 1 ORDER BY 1",
        (after_id, upper, AI_OPS_SOURCE),
    ).fetchall()
    max_id = conn.execute(
        "SELECT coalesce(max(id), %s) FROM automation.health_log WHERE id > %s AND id <= %s",
        (after_id, after_id, upper),
    ).fetchone()
    return NewRows(
        hours=[row[0] for row in result],
        rows=sum(row[1] for row in result),
        last_id=int(max_id[0]) if max_id else after_id,
    )


def latest_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM automation.health_log").fetchone()
    return int(row[0]) if row else 0
