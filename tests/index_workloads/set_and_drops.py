"""Deterministic workloads for foreign-key indexes, drop proposals and realized savings (issue 13, points
4, 6 and 7), generated in SQL with ``generate_series``: each builds its own schema, so a test builds only
what it needs. The answer key sits beside each builder.
"""

from __future__ import annotations

import json

import psycopg

# --------------------------------------------------------------------------------------------- point 4

FK_SQL = """
CREATE SCHEMA fk;
CREATE TABLE fk.currencies (code text PRIMARY KEY);
INSERT INTO fk.currencies VALUES ('EUR'), ('USD'), ('JPY');
CREATE TABLE fk.accounts (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO fk.accounts SELECT g, 'account ' || g FROM generate_series(1, 20000) g;
-- the big child: accounts 19001..20000 have no invoice, so they can be deleted (NO ACTION)
CREATE TABLE fk.invoices (
    id bigint PRIMARY KEY, account_id bigint NOT NULL, currency text NOT NULL, amount_cents bigint NOT NULL
);
INSERT INTO fk.invoices
SELECT g, 1 + g % 19000, (ARRAY['EUR','USD','JPY'])[1 + g % 3], (g * 37) % 100000
FROM generate_series(1, 600000) g;
ALTER TABLE fk.invoices ADD CONSTRAINT invoices_account_fk FOREIGN KEY (account_id) REFERENCES fk.accounts,
    ADD CONSTRAINT invoices_currency_fk FOREIGN KEY (currency) REFERENCES fk.currencies;  -- never deleted
-- a cascading child: deleting an account deletes its sessions (a hidden DELETE per account)
CREATE TABLE fk.sessions (id bigint PRIMARY KEY, account_id bigint NOT NULL, started_at timestamptz NOT NULL);
INSERT INTO fk.sessions SELECT g, 1 + g % 20000, timestamptz '2026-01-01' + g * interval '1 minute'
FROM generate_series(1, 60000) g;
ALTER TABLE fk.sessions ADD CONSTRAINT sessions_account_fk FOREIGN KEY (account_id) REFERENCES fk.accounts
    ON DELETE CASCADE;
-- a tiny child: scanning 300 rows is cheap, no index needed
CREATE TABLE fk.notes (id bigint PRIMARY KEY, account_id bigint REFERENCES fk.accounts ON DELETE SET NULL);
INSERT INTO fk.notes SELECT g, 1 + g % 300 FROM generate_series(1, 300) g;
-- a two-column key covered by an index in the other order (equality on both: any order serves)
CREATE TABLE fk.periods (account_id bigint NOT NULL REFERENCES fk.accounts ON DELETE CASCADE,
                         period int NOT NULL, PRIMARY KEY (account_id, period));
INSERT INTO fk.periods SELECT a, p FROM generate_series(1, 20000) a, generate_series(1, 3) p;
CREATE TABLE fk.period_usage (id bigint PRIMARY KEY, account_id bigint NOT NULL, period int NOT NULL,
                              units int NOT NULL);
INSERT INTO fk.period_usage SELECT g, 1 + g % 20000, 1 + g % 3, g % 97 FROM generate_series(1, 60000) g;
ALTER TABLE fk.period_usage ADD CONSTRAINT usage_period_fk FOREIGN KEY (account_id, period)
    REFERENCES fk.periods ON DELETE CASCADE;
CREATE INDEX period_usage_period_account_idx ON fk.period_usage (period, account_id);
"""
#: (child, columns) of the foreign keys that need an index, and of those that must get none.
FK_EXPECTED = {("fk.invoices", ("account_id",)), ("fk.sessions", ("account_id",))}
FK_NOT_EXPECTED = {
    ("fk.invoices", ("currency",)),  # the parent is never deleted from or updated
    ("fk.notes", ("account_id",)),  # 300 rows
    ("fk.period_usage", ("account_id", "period")),  # covered by (period, account_id)
    ("fk.periods", ("account_id",)),  # covered by its primary key
}
#: accounts without invoices (deletable); the workload deletes the first ones, the test times the rest
DELETABLE = list(range(19001, 20001))


def build_foreign_keys(conn: psycopg.Connection) -> None:
    conn.execute(FK_SQL)
    conn.execute("VACUUM ANALYZE fk.currencies, fk.accounts, fk.invoices, fk.sessions, fk.notes, fk.periods")
    conn.execute("VACUUM ANALYZE fk.period_usage")


def delete_accounts(conn: psycopg.Connection, ids: list[int]) -> None:
    """The application's deletes, one statement per account (pg_stat_statements: one shape, many calls)."""
    for account in ids:
        conn.execute("DELETE FROM fk.accounts WHERE id = %s", (account,))
    conn.execute("SELECT pg_stat_force_next_flush()")


def delete_ms(conn: psycopg.Connection, ids: list[int]) -> float:
    """Execution time of one DELETE of ``ids`` by EXPLAIN ANALYZE, RI triggers and cascades included,
    rolled back so it can be repeated."""
    with conn.transaction(force_rollback=True):
        row = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) DELETE FROM fk.accounts WHERE id = ANY(%s)", (ids,)
        ).fetchone()
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return float(plan[0]["Execution Time"])


# --------------------------------------------------------------------------------------------- point 6

DROPS_SQL = """
CREATE SCHEMA dr;
CREATE TABLE dr.orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, code text NOT NULL,
    created_at timestamptz NOT NULL, CONSTRAINT orders_code_key UNIQUE (code)
);
INSERT INTO dr.orders
SELECT g, 1 + (g::bigint * 7919) % 40000, CASE WHEN g % 500 = 0 THEN 'pending' ELSE 'done' END, 'C' || g,
       timestamptz '2026-01-01' + g * interval '1 minute'
FROM generate_series(1, 500000) g;
CREATE INDEX orders_customer_idx ON dr.orders (customer_id);                        -- prefix of the next
CREATE INDEX orders_customer_created_idx ON dr.orders (customer_id, created_at);
CREATE INDEX orders_status_idx ON dr.orders (status);                               -- identical pair,
CREATE INDEX orders_status_idx2 ON dr.orders (status);                              -- neither scanned
CREATE INDEX orders_created_idx ON dr.orders (created_at);                          -- never scanned
CREATE INDEX orders_pending_idx ON dr.orders (created_at) WHERE status = 'pending'; -- partial, used
CREATE TABLE dr.order_lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES dr.orders, qty int);
INSERT INTO dr.order_lines SELECT g, 1 + g % 500000, g % 5 FROM generate_series(1, 50000) g;
CREATE INDEX order_lines_order_idx ON dr.order_lines (order_id);                    -- serves the FK check
CREATE TABLE dr.bookings (id bigint PRIMARY KEY, room int NOT NULL, during tstzrange NOT NULL,
                          EXCLUDE USING gist (during WITH &&));
INSERT INTO dr.bookings SELECT g, g % 10, tstzrange(timestamptz '2026-01-01' + g * interval '1 hour',
                                                    timestamptz '2026-01-01' + (g + 1) * interval '1 hour')
FROM generate_series(1, 1000) g;
"""
#: The recommendation keys expected with unused_min_stats_days = 0. Of the identical, unscanned pair the
#: later name goes as a duplicate and the other as unused; the prefix goes as a duplicate, not as unused.
DROPS_UNUSED = {"unused_index:dr.orders_created_idx", "unused_index:dr.orders_status_idx"}
DROPS_DUPLICATE = {"duplicate_index:dr.orders_customer_idx", "duplicate_index:dr.orders_status_idx2"}
#: never proposed whatever their statistics: primary keys, a unique constraint, an FK-check index, an
#: exclusion constraint, a partial index that is used, the index the prefix is covered by
DROPS_NEVER = {
    "dr.orders_pkey",
    "dr.orders_code_key",
    "dr.order_lines_pkey",
    "dr.order_lines_order_idx",
    "dr.bookings_pkey",
    "dr.bookings_during_excl",
    "dr.orders_pending_idx",
    "dr.orders_customer_created_idx",
}
DROPS_QUERIES = (
    "SELECT id FROM dr.orders WHERE customer_id = 4242 ORDER BY created_at DESC LIMIT 5",
    "SELECT count(*) FROM dr.orders WHERE status = 'pending' AND created_at > '2026-06-01'",
)


def build_drops(conn: psycopg.Connection) -> None:
    conn.execute(DROPS_SQL)
    conn.execute("VACUUM ANALYZE dr.orders, dr.order_lines, dr.bookings")


def run_drops_queries(conn: psycopg.Connection, rounds: int = 3) -> None:
    for _ in range(rounds):
        for text in DROPS_QUERIES:
            conn.execute(text).fetchall()
    conn.execute("SELECT pg_stat_force_next_flush()")


# --------------------------------------------------------------------------------------------- point 7

SAVINGS_SQL = """
CREATE SCHEMA rs;
CREATE TABLE rs.readings (id bigint PRIMARY KEY, sensor_id int NOT NULL, value double precision NOT NULL)
    WITH (autovacuum_enabled = false);
INSERT INTO rs.readings SELECT g, 1 + (g::bigint * 7919) % 50000, (g % 1000) / 10.0 FROM generate_series(1, 500000) g;
"""
SAVINGS_INDEX = ("rs.readings", ("sensor_id",))


def build_savings(conn: psycopg.Connection) -> None:
    conn.execute(SAVINGS_SQL)
    conn.execute("VACUUM ANALYZE rs.readings")


def read_sensors(conn: psycopg.Connection, calls: int, offset: int = 0) -> None:
    """The application's lookups: one shape in pg_stat_statements, ``calls`` calls."""
    for i in range(calls):
        conn.execute(
            "SELECT id, value FROM rs.readings WHERE sensor_id = %s", (1 + (offset + i * 389) % 50000,)
        ).fetchall()
