"""Racing runs of one partition (issue 10.2): the second writer waits for the first and then replaces its
rows, so both succeed and nothing is doubled.

Deterministic: the first writer's transaction is held open after its write, the second writer is started
in a thread and seen waiting on a lock in ``pg_stat_activity``, then the first commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg

from autopilot_pipeline.health.store import write_quarantine
from autopilot_pipeline.postgres.io import replace_window

HOUR = datetime(2026, 3, 4, 10, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")


def _uptime(checks: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "bucket_start": [HOUR, HOUR],
            "component": ["api", "web"],
            "checks": [checks, checks],
            "up_checks": [checks, checks - 1],
            "uptime_pct": [100.0, 100.0 * (checks - 1) / checks],
        },
        schema_overrides={"bucket_start": TS},
    )


def _bad_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [11, 12],
            "checked_at": [HOUR + timedelta(minutes=5), HOUR + timedelta(minutes=7)],
            "source": ["api", "web"],
            "response_time_ms": [-1.0, None],
            "reason": ["negative response time", "missing response time"],
        },
        schema_overrides={"checked_at": TS},
    )


def _race(
    url: str, first: Callable[[psycopg.Connection], None], second: Callable[[psycopg.Connection], None]
) -> None:
    """``first`` writes in an open transaction; ``second`` runs meanwhile on its own connection; then
    ``first`` commits. Raises what ``second`` raised."""
    errors: list[BaseException] = []
    with psycopg.connect(url) as one, psycopg.connect(url, autocommit=True) as watcher:
        one.execute("SELECT 1")  # a transaction is open: the write's own block becomes a savepoint in it
        first(one)  # its locks are held until the commit below
        with psycopg.connect(url, autocommit=True) as two:
            pid = two.info.backend_pid

            def run() -> None:
                try:
                    second(two)
                except BaseException as exc:  # re-raised in the test's thread
                    errors.append(exc)

            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the second writer is blocked on the first one's locks
                waiting = watcher.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
                if waiting and waiting[0] == "Lock":
                    break
                time.sleep(0.02)
            else:
                raise AssertionError("the second writer never waited for the first")
            one.commit()
            thread.join(30)
    if errors:
        raise errors[0]


def test_two_runs_of_one_partition_both_succeed_and_the_later_one_wins(pg_url: str, conn) -> None:
    replace_window(
        conn, "analytics.uptime_hourly", "bucket_start", HOUR, HOUR + timedelta(hours=1), _uptime(60)
    )

    def write(checks: int) -> Callable[[psycopg.Connection], None]:
        return lambda c: replace_window(
            c, "analytics.uptime_hourly", "bucket_start", HOUR, HOUR + timedelta(hours=1), _uptime(checks)
        )

    _race(pg_url, write(120), write(180))  # before the fix: UniqueViolation in the second writer
    rows = conn.execute("SELECT component, checks FROM analytics.uptime_hourly ORDER BY component").fetchall()
    assert rows == [("api", 180), ("web", 180)]


def test_a_rerun_of_a_partition_replaces_its_quarantine_never_doubles_it(pg_url: str, conn) -> None:
    def write(c: psycopg.Connection) -> None:
        with c.transaction():
            write_quarantine(
                c, "automation.health_log", "checked_at", _bad_rows(), HOUR, HOUR + timedelta(hours=1)
            )

    _race(pg_url, write, write)
    write(conn)  # and a plain rerun afterwards
    counts = conn.execute(
        "SELECT count(*), count(DISTINCT source_id) FROM analytics.quarantine WHERE source_table = 'automation.health_log'"
    ).fetchone()
    assert counts == (2, 2)


def test_the_quarantine_has_its_natural_key(conn) -> None:
    conn.execute(
        "INSERT INTO analytics.quarantine (source_table, source_id, partition_start, reason, payload) "
        "VALUES ('automation.health_log', 99, now(), 'x', '{}')"
    )
    try:
        conn.execute(
            "INSERT INTO analytics.quarantine (source_table, source_id, partition_start, reason, payload) "
            "VALUES ('automation.health_log', 99, now(), 'x', '{}')"
        )
    except psycopg.errors.UniqueViolation:
        return
    raise AssertionError("a source row was quarantined twice")
