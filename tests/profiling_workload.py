"""A deliberately under-indexed shop database and a query workload against it, for the profiling tests.

Tables are big enough (50k-100k rows) that the planner prefers an index for a selective predicate, small
enough to build in well under a second. The answer key: each query shape names the index it lacks, or
None when an existing index already serves it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

SCHEMA_SQL = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
    id bigint PRIMARY KEY, email text NOT NULL, country text NOT NULL, tier text NOT NULL,
    created_at timestamptz NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO shop.customers
SELECT g, 'user' || g || '@example.com', (ARRAY['us','de','fr','jp','br'])[1 + g % 5],
       (ARRAY['free','pro','team'])[1 + (g / 5) % 3], timestamptz '2026-01-01' + g * interval '1 minute'
FROM generate_series(1, 50000) g;
CREATE INDEX customers_tier_country_idx ON shop.customers (tier, country);

CREATE TABLE shop.orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, total_cents bigint NOT NULL,
    created_at timestamptz NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO shop.orders
SELECT g, 1 + (g::bigint * 7919) % 50000,
       CASE WHEN g % 100 = 0 THEN 'cancelled' WHEN g % 3 = 0 THEN 'shipped' ELSE 'delivered' END,
       (g * 37) % 10000, timestamptz '2026-01-01' + g * interval '30 seconds'
FROM generate_series(1, 100000) g;

CREATE TABLE shop.order_items (
    id bigint PRIMARY KEY, order_id bigint NOT NULL, product_id bigint NOT NULL, quantity int NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO shop.order_items SELECT g, 1 + (g::bigint * 104729) % 100000, 1 + g % 20000, 1 + g % 4
FROM generate_series(1, 100000) g;

CREATE TABLE shop.events (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL, event_type text NOT NULL, created_at timestamptz NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO shop.events
SELECT g, 1 + g % 50, 'type_' || ((g / 50) % 20), timestamptz '2026-01-01' + g * interval '10 seconds'
FROM generate_series(1, 80000) g;

CREATE TABLE shop.products (
    id bigint PRIMARY KEY, sku text NOT NULL, name text NOT NULL, category text NOT NULL, price_cents bigint NOT NULL
) WITH (autovacuum_enabled = false);
INSERT INTO shop.products SELECT g, 'SKU-' || g, 'product ' || g, 'cat_' || (g % 40), (g * 13) % 5000
FROM generate_series(1, 20000) g;
CREATE INDEX products_sku_idx ON shop.products (sku);
CREATE INDEX products_sku_idx2 ON shop.products (sku);
CREATE INDEX products_category_idx ON shop.products (category);
CREATE INDEX products_category_price_idx ON shop.products (category, price_cents);
CREATE INDEX products_name_idx ON shop.products (name);
"""


@dataclass(frozen=True)
class Shape:
    name: str
    missing: tuple[str, tuple[str, ...]] | None  # (table, columns) of the index it lacks; None: covered
    templates: tuple[str, ...]  # one query text per call (literals vary)


def _shapes() -> list[Shape]:
    hours = [f"2026-01-0{1 + d} {h:02d}:00:00+00" for d in range(3) for h in (3, 9, 15)]
    return [
        Shape(
            "customer_by_email",
            ("shop.customers", ("email",)),
            tuple(
                f"SELECT id, tier FROM shop.customers WHERE email = 'user{n}@example.com'"
                for n in (17, 2024, 31337, 45000, 49999, 8, 777, 12345)
            ),
        ),
        Shape(
            "events_in_range",
            ("shop.events", ("created_at",)),
            tuple(
                f"SELECT count(*) FROM shop.events WHERE created_at >= '{h}' "
                f"AND created_at < timestamptz '{h}' + interval '1 hour'"
                for h in hours[:8]
            ),
        ),
        Shape(
            "order_with_items",
            ("shop.order_items", ("order_id",)),
            tuple(
                "SELECT o.id, o.status, i.product_id, i.quantity FROM shop.orders o "
                f"JOIN shop.order_items i ON i.order_id = o.id WHERE o.id = {n}"
                for n in (5, 999, 4242, 31000, 77777, 90001, 99999, 64)
            ),
        ),
        Shape(
            "recent_cancelled",
            ("shop.orders", ("status", "created_at")),
            tuple(
                f"SELECT id, total_cents FROM shop.orders WHERE status = 'cancelled' "
                f"ORDER BY created_at DESC LIMIT {n}"
                for n in (10, 20, 20, 50, 10, 20, 30, 20)
            ),
        ),
        Shape(
            "events_by_customer_type",
            ("shop.events", ("customer_id", "event_type")),
            tuple(
                f"SELECT id, created_at FROM shop.events WHERE customer_id = {c} AND event_type = 'type_{t}'"
                for c, t in ((1, 2), (7, 19), (13, 5), (21, 0), (34, 11), (42, 7), (49, 3), (3, 14))
            ),
        ),
        Shape(
            "product_by_sku",
            None,
            tuple(
                f"SELECT id, price_cents FROM shop.products WHERE sku = 'SKU-{n}'"
                for n in (1, 50, 999, 1234, 5000, 12000, 19999, 777)
            ),
        ),
        Shape(
            "customers_by_tier_country",
            None,
            tuple(
                f"SELECT count(*) FROM shop.customers WHERE tier = '{t}' AND country = '{c}'"
                for t, c in (
                    ("team", "jp"),
                    ("pro", "de"),
                    ("free", "us"),
                    ("team", "fr"),
                    ("pro", "br"),
                    ("free", "jp"),
                    ("team", "us"),
                    ("pro", "fr"),
                )
            ),
        ),
    ]


SHAPES = _shapes()
BAD_QUERIES = {
    "unparseable": [
        "SELEC id FROM shop.orders",
        "SELECT * FROM shop.orders WHERE (id = 5",
        "SELECT 1; DROP TABLE shop.orders",
    ],
    "too_long": ["SELECT id FROM shop.orders WHERE id IN (" + ", ".join(str(i) for i in range(20_000)) + ")"],
    "odd_encoding": [
        "SELECT id FROM shop.products WHERE name = 'a\u202eb'",
        "SELECT 'JosÃ© MÃ¼ller'",
        "SELECT 'bell \x07 escape \x1b[31m'",
    ],
}


def build(conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA_SQL)
    conn.execute("VACUUM ANALYZE shop.customers, shop.orders, shop.order_items, shop.events, shop.products")


def run_workload(conn: psycopg.Connection, rounds: int = 1, log: bool = True) -> dict[str, float]:
    """Run every shape's queries; log each as the seed's example does. Returns mean ms per shape."""
    means = {}
    for shape in SHAPES:
        total = 0.0
        for _ in range(rounds):
            for text in shape.templates:
                started = time.perf_counter()
                rows = conn.execute(text).fetchall()
                ms = (time.perf_counter() - started) * 1000.0
                total += ms
                if log:
                    conn.execute(
                        "SELECT automation.log_query_performance(%s, %s, %s, 'api')", (text, ms, len(rows))
                    )
        means[shape.name] = total / (rounds * len(shape.templates))
    # a backend publishes its table/index counters at most once a second; make this session's visible now
    conn.execute("SELECT pg_stat_force_next_flush()")
    return means


def log_bad_queries(conn: psycopg.Connection) -> int:
    n = 0
    for texts in BAD_QUERIES.values():
        for text in texts:
            conn.execute("SELECT automation.log_query_performance(%s, 12.5, NULL, 'api')", (text,))
            n += 1
    return n
