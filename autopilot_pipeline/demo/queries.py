"""The ``query_performance`` workload: query shapes that are slow exactly where an index is missing, plus a
few bad query texts profiling must skip."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from autopilot_pipeline.demo.app import _EVENT_TYPES
from autopilot_pipeline.demo.common import _HOUR, _load, _pick, _rng, _ts

# --------------------------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class _Shape:
    """One query shape of the demo workload; ``build`` makes n query texts and their row counts."""

    name: str
    weight: float
    median_ms: float
    sigma: float
    sources: tuple[float, float, float]  # P(api), P(worker), P(cron)
    build: Callable[[int, np.random.Generator, dict], tuple[pl.Series, np.ndarray]]
    missing_index: str | None  # "table (columns)" the shape needs and the demo app lacks


def _lit(values: np.ndarray | pl.Series) -> pl.Expr:
    return pl.lit(pl.Series(values)).cast(pl.String)


def _sql(n: int, *parts: str | pl.Expr | np.ndarray | pl.Series) -> pl.Series:
    """Concatenate SQL text pieces (str = literal text, arrays = per-row values) into n query strings."""
    exprs = [pl.lit(p) if isinstance(p, str) else p if isinstance(p, pl.Expr) else _lit(p) for p in parts]
    return pl.select(pl.concat_str(exprs).alias("query")).to_series()


def _by_email(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    hit = rng.random(n) < 0.9
    emails = ctx["emails"].gather(rng.integers(0, ctx["emails"].len(), n))
    misses = _sql(n, "nobody", rng.integers(1, 10**6, n), "@example.com")
    emails = pl.select(pl.when(pl.Series(hit)).then(emails).otherwise(misses)).to_series()
    q = _sql(n, "SELECT id, name, tier FROM demo.customers WHERE email = '", emails, "'")
    return q, hit.astype(np.int64)


def _orders_by_customer(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    ids = rng.integers(1, ctx["customers"] + 1, n)
    q = _sql(n, "SELECT id, status, total_cents, created_at FROM demo.orders WHERE customer_id = ", ids)
    return q, rng.poisson(5.0, n)


def _events_range(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    start, end = ctx["start"], ctx["end"]
    hours = rng.choice([1, 6, 24], n, p=[0.6, 0.3, 0.1])
    lo = start + (rng.random(n) * (end - start - 24 * _HOUR)).astype(np.int64)
    lo -= lo % _HOUR
    fmt = "%Y-%m-%d %H:%M:%S+00"
    q = _sql(
        n,
        "SELECT event_type, count(*) FROM demo.events WHERE created_at >= '",
        _ts("lo", lo).dt.strftime(fmt),
        "' AND created_at < '",
        _ts("hi", lo + hours * _HOUR).dt.strftime(fmt),
        "' GROUP BY event_type",
    )
    return q, np.full(n, len(_EVENT_TYPES))


def _order_join(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    ids = rng.integers(1, ctx["orders"] + 1, n)
    q = _sql(
        n,
        "SELECT o.id, o.created_at, i.product_id, i.quantity, i.unit_price_cents\n"
        "FROM demo.orders o\nJOIN demo.order_items i ON i.order_id = o.id\nWHERE o.id = ",
        ids,
    )
    return q, rng.integers(1, 7, n)


def _recent_by_status(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    status = _pick(("pending", "processing", "shipped"), rng.choice(3, n, p=[0.5, 0.3, 0.2]), "s")
    limit = rng.choice([20, 50], n, p=[0.8, 0.2])
    q = _sql(
        n,
        "SELECT id, customer_id, total_cents FROM demo.orders WHERE status = '",
        status,
        "' ORDER BY created_at DESC LIMIT ",
        limit,
    )
    return q, limit


def _events_by_customer_type(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    ids = rng.integers(1, ctx["customers"] + 1, n)
    kinds = _pick(_EVENT_TYPES, rng.integers(0, len(_EVENT_TYPES), n), "t")
    q = _sql(
        n,
        "SELECT id, payload, created_at FROM demo.events WHERE customer_id = ",
        ids,
        " AND event_type = '",
        kinds,
        "'",
    )
    return q, rng.poisson(2.0, n)


def _new_customers(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    interval = _pick(("1 day", "7 days", "30 days"), rng.integers(0, 3, n), "i")
    q = _sql(n, "SELECT count(*) FROM demo.customers WHERE created_at > NOW() - INTERVAL '", interval, "'")
    return q, np.ones(n, dtype=np.int64)


def _product_by_id(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    ids = rng.integers(1, ctx["products"] + 1, n)
    return _sql(n, "SELECT id, sku, name, price_cents FROM demo.products WHERE id = ", ids), np.ones(
        n, np.int64
    )


def _customer_by_id(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    ids = rng.integers(1, ctx["customers"] + 1, n)
    return _sql(n, "SELECT * FROM demo.customers WHERE id = ", ids), np.ones(n, np.int64)


def _insert_event(n: int, rng: np.random.Generator, ctx: dict) -> tuple[pl.Series, np.ndarray]:
    ids = rng.integers(1, ctx["customers"] + 1, n)
    product = rng.integers(1, ctx["products"] + 1, n)
    kinds = _pick(_EVENT_TYPES, rng.integers(0, len(_EVENT_TYPES), n), "t")
    q = _sql(
        n,
        "INSERT INTO demo.events (customer_id, event_type, payload, created_at) VALUES (",
        ids,
        ", '",
        kinds,
        '\', \'{"path": "/products/',
        product,
        "\"}', now())",
    )
    return q, np.zeros(n, dtype=np.int64)


#: The workload. Slow shapes lack the index named last; fast ones are covered by a primary key.
_SHAPES = (
    _Shape("customer_by_email", 0.07, 650.0, 0.35, (0.9, 0.1, 0.0), _by_email, "customers (email)"),
    _Shape(
        "orders_by_customer", 0.10, 1300.0, 0.4, (0.8, 0.2, 0.0), _orders_by_customer, "orders (customer_id)"
    ),
    _Shape("events_in_range", 0.03, 2100.0, 0.35, (0.0, 0.3, 0.7), _events_range, "events (created_at)"),
    _Shape("order_with_items", 0.08, 900.0, 0.35, (0.85, 0.15, 0.0), _order_join, "order_items (order_id)"),
    _Shape(
        "recent_orders_by_status",
        0.05,
        1100.0,
        0.3,
        (0.3, 0.6, 0.1),
        _recent_by_status,
        "orders (status, created_at)",
    ),
    _Shape(
        "events_by_customer_type",
        0.06,
        1600.0,
        0.4,
        (0.7, 0.3, 0.0),
        _events_by_customer_type,
        "events (customer_id, event_type)",
    ),
    _Shape("new_customers", 0.02, 350.0, 0.3, (0.0, 0.2, 0.8), _new_customers, "customers (created_at)"),
    _Shape("product_by_id", 0.25, 0.8, 0.5, (0.95, 0.05, 0.0), _product_by_id, None),
    _Shape("customer_by_id", 0.20, 0.6, 0.5, (0.9, 0.1, 0.0), _customer_by_id, None),
    _Shape("insert_event", 0.14, 2.0, 0.5, (0.7, 0.3, 0.0), _insert_event, None),
)
#: Query shape -> the index it lacks in the demo app (None: already covered by a primary key). Profiling
#: tests use this as the answer key.
QUERY_SHAPES: dict[str, str | None] = {shape.name: shape.missing_index for shape in _SHAPES}
_QUERIES_PER_DAY = 2500


def _bad_queries() -> dict[str, list[str]]:
    """Texts a profiler must count and skip without crashing."""
    huge = (
        "SELECT id, status FROM demo.orders WHERE id IN (" + ", ".join(str(i) for i in range(1, 30_001)) + ")"
    )
    return {
        "unparseable": [
            "SELEC id FROM demo.orders WHER customer_id = 12",
            "SELECT * FROM demo.orders WHERE (customer_id = 5",
            "this is not sql at all ;;",
        ],
        "huge": [huge, huge.replace("SELECT id, status", "SELECT id, total_cents")],
        "odd_unicode": [
            "SELECT id FROM demo.products WHERE name = 'Ünïcödé 🚀 \u202emirrored\u202c zero\u200bwidth'",
            "-- コメント\nSELECT * FROM demo.customers WHERE name = 'JosÃ© MÃ¼ller'",
            "SELECT 'ﬁ ﬂ ∑ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x07\x1b[31m' AS label",
        ],
    }


def _query_performance(
    start: int, end: int, days: int, seed: int, ctx: dict
) -> tuple[pl.DataFrame, dict[str, int]]:
    rng = _rng(seed, "queries")
    total = _QUERIES_PER_DAY * days
    weights = np.array([s.weight for s in _SHAPES])
    counts = rng.multinomial(total, weights / weights.sum())
    frames = []
    for shape, n in zip(_SHAPES, counts, strict=True):
        if n == 0:
            continue
        n = int(n)
        # call times follow traffic: rejection-sample uniform times against the load curve
        candidates = start + (rng.random(4 * n + 16) * (end - start)).astype(np.int64)
        accepted = candidates[rng.random(candidates.shape[0]) < 0.15 + 0.85 * _load(candidates)]
        logged = np.sort(np.resize(accepted, n))
        query, rows = shape.build(n, rng, ctx)
        ms = shape.median_ms * (1.0 + 0.5 * _load(logged)) * np.exp(shape.sigma * rng.standard_normal(n))
        source = rng.choice(3, n, p=shape.sources)
        frames.append(
            pl.DataFrame(
                [
                    query,
                    pl.Series("execution_time_ms", np.round(ms, 3)),
                    pl.Series("rows_returned", np.asarray(rows, dtype=np.int64)),
                    _pick(("api", "worker", "cron"), source, "source"),
                    _ts("logged_at", logged),
                ]
            )
        )
    bad = _bad_queries()
    texts = [text for group in bad.values() for text in group]
    logged = start + (rng.random(len(texts)) * (end - start)).astype(np.int64)
    frames.append(
        pl.DataFrame(
            [
                pl.Series("query", texts, dtype=pl.String),
                pl.Series("execution_time_ms", np.round(rng.uniform(5.0, 50.0, len(texts)), 3)),
                pl.Series("rows_returned", [None] * len(texts), dtype=pl.Int64),
                pl.Series("source", ["api"] * len(texts), dtype=pl.String),
                _ts("logged_at", logged),
            ]
        )
    )
    frame = pl.concat(frames).sort("logged_at", maintain_order=True)
    return frame, {kind: len(group) for kind, group in bad.items()}
