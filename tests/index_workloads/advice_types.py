"""A workload for index advice beyond plain columns (issue 13 points 1, 2, 3 and 5): an expression, a
partial, a BRIN-suited and a shared multi-column index, and queries that must get no index.

Deterministic (generate_series, no randomness), 0.5-1.5 M rows per large table, built in SQL in a few
seconds. The answer key: each case names the recommendation key it must produce, or None when no index may
be proposed for its queries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

SCHEMA_SQL = """
CREATE SCHEMA app;

-- 1. expression: logins look users up by lower(email); the plain email index cannot serve that
CREATE TABLE app.users (
    id bigint PRIMARY KEY, email text NOT NULL, plan text NOT NULL, signed_up timestamptz NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO app.users
SELECT g, 'User' || g || '@Example.COM', (ARRAY['free','pro','team'])[1 + g % 3],
       timestamptz '2025-01-01' + g * interval '1 minute'
FROM generate_series(1, 500000) g;
CREATE INDEX users_email_idx ON app.users (email);

-- 2. partial: a few hundred pending orders among a million; 3. (no index) a 50 % boolean
CREATE TABLE app.orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, is_gift boolean NOT NULL,
    total_cents bigint NOT NULL, placed_at timestamptz NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO app.orders
SELECT g, 1 + (g::bigint * 7919) % 100000,
       CASE WHEN g % 3331 = 0 THEN 'pending' WHEN g % 10 = 0 THEN 'shipped' ELSE 'delivered' END,
       g % 2 = 0, (g::bigint * 37) % 100000, timestamptz '2025-01-01' + g * interval '20 seconds'
FROM generate_series(1, 1000000) g;

-- 2b. partial on IS NULL: a job queue where only the newest few hundred jobs are not done yet
CREATE TABLE app.jobs (
    id bigint PRIMARY KEY, kind text NOT NULL, queued_at timestamptz NOT NULL, done_at timestamptz
) WITH (autovacuum_enabled = false);
INSERT INTO app.jobs
SELECT g, 'kind_' || g % 7, timestamptz '2025-01-01' + g * interval '30 seconds',
       CASE WHEN g > 499800 THEN NULL ELSE timestamptz '2025-01-01' + g * interval '30 seconds' + interval '5 minutes' END
FROM generate_series(1, 500000) g;
CREATE INDEX jobs_kind_idx ON app.jobs (kind);  -- a poor index (7 values)

-- 4. BRIN-suited: append-only readings in time order (correlation 1), read by time range
CREATE TABLE app.readings (
    id bigint NOT NULL, sensor int NOT NULL, recorded_at timestamp NOT NULL, value double precision NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO app.readings
SELECT g, g % 500, timestamp '2025-01-01' + g * interval '15 seconds', (g % 1000) / 10.0
FROM generate_series(1, 1500000) g;

-- 5. redundancy: three query shapes one (project_id, state, updated_at) index serves (1,250 rows per pair)
CREATE TABLE app.tickets (
    id bigint PRIMARY KEY, project_id int NOT NULL, state text NOT NULL, updated_at timestamptz NOT NULL,
    title text NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO app.tickets
SELECT g, 1 + g % 100, (ARRAY['open','closed','review','blocked'])[1 + (g / 100) % 4],
       timestamptz '2025-01-01' + g * interval '1 minute', 'ticket ' || g
FROM generate_series(1, 500000) g;

-- no index: a tiny table
CREATE TABLE app.settings (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO app.settings SELECT 'key_' || g, 'value ' || g FROM generate_series(1, 200) g;
CREATE TABLE app.flags (name text NOT NULL, enabled boolean NOT NULL);
INSERT INTO app.flags SELECT 'flag_' || g, g % 2 = 0 FROM generate_series(1, 300) g;
"""

TABLES = ("app.users", "app.orders", "app.jobs", "app.readings", "app.tickets", "app.settings", "app.flags")


@dataclass(frozen=True)
class Case:
    name: str
    expected: str | None  # the recommendation key its queries must get; None: no index may be proposed
    texts: tuple[str, ...]  # one query text per call (literals vary where the application's would)


def _cases() -> list[Case]:
    users = (17, 4242, 99999, 123456, 250000, 377777, 499999, 8)
    customers = (5, 77, 1234, 5678, 31337, 65000, 88888, 99999)
    starts = [f"2025-0{m}-1{d} 0{h}:00:00" for m, d, h in ((2, 1, 3), (3, 4, 6), (4, 2, 9), (5, 7, 1))]
    projects = (3, 99, 51, 77, 10, 15, 19, 42)
    states = ("open", "closed", "review", "blocked")
    return [
        Case(
            "expression_lower_email",
            "missing_index:app.users((lower(email)))",
            tuple(
                f"SELECT id, plan FROM app.users WHERE lower(email) = lower('user{n}@example.com')"
                for n in users
            ),
        ),
        Case(
            "partial_pending_orders",
            "missing_index:app.orders(status) WHERE (status = 'pending')",
            ("SELECT id, customer_id, total_cents FROM app.orders WHERE status = 'pending'",) * 6,
        ),
        Case(
            "partial_open_jobs",
            "missing_index:app.jobs(queued_at) WHERE (done_at IS NULL)",
            tuple(
                f"SELECT id, kind FROM app.jobs WHERE done_at IS NULL ORDER BY queued_at LIMIT {n}"
                for n in (10, 50, 50, 100)
            ),
        ),
        Case(
            "jobs_of_kind_in_a_day",  # a day is 0.6 % of the jobs: (queued_at) beats the poor (kind) index,
            "missing_index:app.jobs(queued_at)",  # and (kind, queued_at) is not enough better for its size
            tuple(
                f"SELECT id FROM app.jobs WHERE kind = 'kind_{k}' AND queued_at >= '2025-02-0{d}' "
                f"AND queued_at < timestamptz '2025-02-0{d}' + interval '1 day'"
                for k, d in ((1, 1), (3, 2), (5, 3), (6, 4))
            ),
        ),
        Case(
            "plain_customer_orders",  # the literal varies: a plain index, not a partial one
            "missing_index:app.orders(customer_id)",
            tuple(f"SELECT id, total_cents FROM app.orders WHERE customer_id = {c}" for c in customers),
        ),
        Case(
            "time_range_readings",
            "missing_index:app.readings(recorded_at)",
            tuple(
                f"SELECT count(*), avg(value) FROM app.readings WHERE recorded_at >= '{s}' "
                f"AND recorded_at < timestamp '{s}' + interval '4 hours'"
                for s in starts
            ),
        ),
        Case(
            "tickets_by_project_state_recent",
            "missing_index:app.tickets(project_id,state,updated_at)",
            tuple(
                f"SELECT id, title FROM app.tickets WHERE project_id = {p} AND state = '{s}' "
                "ORDER BY updated_at DESC LIMIT 20"
                for p, s in zip(projects, states * 2, strict=True)
            ),
        ),
        Case(
            "tickets_by_project_state",
            "missing_index:app.tickets(project_id,state,updated_at)",
            tuple(
                f"SELECT count(*) FROM app.tickets WHERE project_id = {p} AND state = '{s}'"
                for p, s in zip(projects, states[::-1] * 2, strict=True)
            ),
        ),
        Case(
            "tickets_by_project",
            "missing_index:app.tickets(project_id,state,updated_at)",
            tuple(f"SELECT count(*) FROM app.tickets WHERE project_id = {p}" for p in projects),
        ),
        Case(
            "gift_orders_boolean",  # half the rows: a sequential scan is right
            None,
            tuple("SELECT count(*) FROM app.orders WHERE is_gift = true" for _ in range(4)),
        ),
        Case(
            "user_by_exact_email",  # already served by users_email_idx
            None,
            tuple(f"SELECT id FROM app.users WHERE email = 'User{n}@Example.COM'" for n in users),
        ),
        Case(
            "users_signed_up_on_day",  # date_trunc on timestamptz is only STABLE: not indexable
            None,
            tuple(
                f"SELECT count(*) FROM app.users WHERE date_trunc('day', signed_up) = '2025-02-0{d}'"
                for d in (1, 2, 3, 4)
            ),
        ),
        Case(
            "tiny_settings",
            None,
            tuple(f"SELECT value FROM app.settings WHERE value = 'value {n}'" for n in (1, 50, 150, 199)),
        ),
        Case(
            "tiny_flags",
            None,
            tuple(f"SELECT enabled FROM app.flags WHERE name = 'flag_{n}'" for n in (1, 50, 150, 299)),
        ),
    ]


CASES = _cases()


def build(conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA_SQL)
    conn.execute("VACUUM ANALYZE " + ", ".join(TABLES))


def run_workload(conn: psycopg.Connection) -> None:
    """Run every case's queries once and log each call, as the application does."""
    for case in CASES:
        for text in case.texts:
            started = time.perf_counter()
            rows = conn.execute(text).fetchall()
            ms = (time.perf_counter() - started) * 1000.0
            conn.execute("SELECT automation.log_query_performance(%s, %s, %s, 'api')", (text, ms, len(rows)))
    conn.execute("SELECT pg_stat_force_next_flush()")
