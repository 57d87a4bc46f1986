"""A small e-commerce app (``demo.customers``, ``products``, ``orders``, ``order_items``, ``events``) for the
profiling workload to run against."""

from __future__ import annotations

import numpy as np
import polars as pl

from autopilot_pipeline.demo.common import _DAY, _pick, _rng, _ts

# --------------------------------------------------------------------------------------------- demo app

_FIRST = (
    "anna",
    "ben",
    "carla",
    "david",
    "elena",
    "felix",
    "grace",
    "hugo",
    "ines",
    "jonas",
    "kira",
    "liam",
    "maria",
    "noah",
    "olga",
    "paul",
    "quinn",
    "rosa",
    "samir",
    "tara",
    "umar",
    "vera",
    "wei",
    "yuki",
    "zoe",
)
_LAST = (
    "schmidt",
    "garcia",
    "nguyen",
    "smith",
    "kowalski",
    "rossi",
    "tanaka",
    "okafor",
    "silva",
    "novak",
    "larsen",
    "dubois",
    "khan",
    "murphy",
    "costa",
    "weber",
    "ivanova",
    "haddad",
    "berg",
    "moreau",
)
_DOMAINS = ("example.com", "mail.example.org", "shop.example.net")
_COUNTRIES = ("US", "DE", "GB", "FR", "BR", "IN", "JP", "CA", "NL", "ES")
_TIERS = ("free", "pro", "enterprise")
_CATEGORIES = ("books", "electronics", "garden", "toys", "kitchen", "sports", "beauty", "office")
_ADJECTIVES = ("compact", "deluxe", "eco", "smart", "classic", "ultra", "mini", "pro", "vintage", "rapid")
_NOUNS = (
    "lamp",
    "kettle",
    "backpack",
    "headphones",
    "notebook",
    "blender",
    "drill",
    "chair",
    "puzzle",
    "mug",
)
_ORDER_STATUSES = ("delivered", "shipped", "processing", "pending", "cancelled", "refunded")
_EVENT_TYPES = ("page_view", "search", "add_to_cart", "checkout", "login")

#: Rows of the demo app tables at ``app_scale=1`` (orders and events also scale; items follow orders).
APP_ROWS = {"customers": 10_000, "products": 2_000, "orders": 50_000, "events": 120_000}


def _app_tables(end: int, seed: int, app_scale: float) -> dict[str, pl.DataFrame]:
    rng = _rng(seed, "app")
    n_customers, n_products, n_orders, n_events = (
        max(10, int(APP_ROWS[k] * app_scale)) for k in ("customers", "products", "orders", "events")
    )
    cust_id = np.arange(1, n_customers + 1, dtype=np.int64)
    first = rng.integers(0, len(_FIRST), n_customers)
    last = rng.integers(0, len(_LAST), n_customers)
    # ids grow with created_at, as rows are appended in a real app
    cust_created = np.sort(end - (rng.random(n_customers) * 730 * _DAY).astype(np.int64))
    customers = pl.DataFrame(
        [
            pl.Series("id", cust_id),
            _pick(_FIRST, first, "first"),
            _pick(_LAST, last, "last"),
            _pick(_DOMAINS, rng.integers(0, len(_DOMAINS), n_customers), "domain"),
            _pick(
                _COUNTRIES, rng.choice(len(_COUNTRIES), n_customers, p=_weights(len(_COUNTRIES))), "country"
            ),
            _pick(_TIERS, rng.choice(3, n_customers, p=[0.7, 0.25, 0.05]), "tier"),
            _ts("created_at", cust_created),
        ]
    ).select(
        "id",
        pl.concat_str(
            "first", pl.lit("."), "last", pl.col("id").cast(pl.String), pl.lit("@"), "domain"
        ).alias("email"),
        pl.concat_str(
            pl.col("first").str.to_titlecase(), pl.lit(" "), pl.col("last").str.to_titlecase()
        ).alias("name"),
        "country",
        "tier",
        "created_at",
    )
    price = np.round(rng.lognormal(np.log(2500), 0.9, n_products)).astype(np.int64) + 99
    products = pl.DataFrame(
        [
            pl.Series("id", np.arange(1, n_products + 1, dtype=np.int64)),
            _pick(_ADJECTIVES, rng.integers(0, len(_ADJECTIVES), n_products), "adj"),
            _pick(_NOUNS, rng.integers(0, len(_NOUNS), n_products), "noun"),
            _pick(_CATEGORIES, rng.integers(0, len(_CATEGORIES), n_products), "category"),
            pl.Series("price_cents", price),
            _ts("created_at", np.sort(end - (rng.random(n_products) * 1000 * _DAY).astype(np.int64))),
        ]
    ).select(
        "id",
        pl.format("SKU-{}", pl.col("id").cast(pl.String).str.zfill(6)).alias("sku"),
        pl.concat_str(pl.col("adj").str.to_titlecase(), pl.lit(" "), "noun").alias("name"),
        "category",
        "price_cents",
        "created_at",
    )
    # orders: heavy-tailed customers (a few buy a lot), created over the last 180 days, growing over time
    buyer_weight = rng.lognormal(0.0, 1.2, n_customers)
    order_customer = rng.choice(cust_id, n_orders, p=buyer_weight / buyer_weight.sum())
    order_created = np.sort(end - (rng.random(n_orders) ** 1.3 * 180 * _DAY).astype(np.int64))
    order_created = np.maximum(order_created, cust_created[order_customer - 1])
    order_status = rng.choice(len(_ORDER_STATUSES), n_orders, p=[0.55, 0.15, 0.1, 0.1, 0.07, 0.03])
    items_per_order = rng.integers(1, 7, n_orders)
    n_items = int(items_per_order.sum())
    popularity = rng.lognormal(0.0, 1.0, n_products)
    item_product = rng.choice(n_products, n_items, p=popularity / popularity.sum()) + 1
    quantity = rng.choice([1, 1, 1, 2, 2, 3], n_items)
    item_order = np.repeat(np.arange(1, n_orders + 1, dtype=np.int64), items_per_order)
    order_items = pl.DataFrame(
        [
            pl.Series("id", np.arange(1, n_items + 1, dtype=np.int64)),
            pl.Series("order_id", item_order),
            pl.Series("product_id", item_product.astype(np.int64)),
            pl.Series("quantity", quantity.astype(np.int32)),
            pl.Series("unit_price_cents", price[item_product - 1]),
        ]
    )
    totals = np.bincount(item_order - 1, weights=quantity * price[item_product - 1], minlength=n_orders)
    orders = pl.DataFrame(
        [
            pl.Series("id", np.arange(1, n_orders + 1, dtype=np.int64)),
            pl.Series("customer_id", order_customer.astype(np.int64)),
            _pick(_ORDER_STATUSES, order_status, "status"),
            pl.Series("total_cents", totals.astype(np.int64)),
            _ts("created_at", order_created),
            _ts(
                "updated_at",
                np.minimum(order_created + (rng.random(n_orders) * 5 * _DAY).astype(np.int64), end),
            ),
        ]
    )
    event_customer = rng.choice(cust_id, n_events, p=buyer_weight / buyer_weight.sum())
    event_type = rng.choice(len(_EVENT_TYPES), n_events, p=[0.55, 0.2, 0.12, 0.05, 0.08])
    event_created = np.sort(end - (rng.random(n_events) * 60 * _DAY).astype(np.int64))
    events = (
        pl.DataFrame(
            [
                pl.Series("id", np.arange(1, n_events + 1, dtype=np.int64)),
                pl.Series("customer_id", event_customer.astype(np.int64)),
                _pick(_EVENT_TYPES, event_type, "event_type"),
                pl.Series("product", (rng.integers(1, n_products + 1, n_events)).astype(np.int64)),
                pl.Series("mobile", rng.random(n_events) < 0.6),
                _ts("created_at", event_created),
            ]
        )
        .with_columns(
            pl.concat_str(
                pl.lit('{"path": "/products/'),
                pl.col("product").cast(pl.String),
                pl.lit('", "device": "'),
                pl.when(pl.col("mobile")).then(pl.lit("mobile")).otherwise(pl.lit("desktop")),
                pl.lit('"}'),
            ).alias("payload")
        )
        .select("id", "customer_id", "event_type", "payload", "created_at")
        .sort("id")
    )
    return {
        "customers": customers,
        "products": products,
        "orders": orders,
        "order_items": order_items,
        "events": events,
    }


def _weights(n: int) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1)
    return w / w.sum()
