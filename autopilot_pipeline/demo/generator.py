"""Seeded, realistic demo data for every table the pipeline reads, with injected incidents as ground truth.

Pure (numpy + polars, no database): ``generate(days, components, seed, end)`` returns the same frames for the
same arguments, so tests, benchmarks and the ``autopilot`` commands share one generator. The parts live in
:mod:`.health_log`, :mod:`.incidents`, :mod:`.releases`, :mod:`.app` and :mod:`.queries`; the business day is
in UTC, so "business hours" means 09:00-17:00 UTC on weekdays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from autopilot_pipeline.demo.app import _app_tables
from autopilot_pipeline.demo.common import _DAY, BAD_ROW_COUNTS, LATE_ROWS, _dt, _ts, _us, component_names
from autopilot_pipeline.demo.health_log import (
    _component_health,
    _health_frame,
    _HealthArrays,
    _inject_bad_rows,
    _metric_samples,
)
from autopilot_pipeline.demo.incidents import _describe, _plan_incidents
from autopilot_pipeline.demo.queries import _query_performance
from autopilot_pipeline.demo.releases import _deployment_log, _migration_log

# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Incident:
    """Ground truth of one injected incident (a row of ``demo.incidents``)."""

    kind: str
    component: str
    started_at: datetime
    ended_at: datetime
    description: str


@dataclass(frozen=True)
class DemoSummary:
    """What a generation (or load) produced: row counts per table, bad rows, incidents and the period."""

    start: datetime
    end: datetime
    days: int
    seed: int
    components: tuple[str, ...]
    rows: dict[str, int]
    bad_rows: dict[str, int]
    late_rows: int
    bad_queries: dict[str, int]
    incidents: tuple[Incident, ...]

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def text(self) -> str:
        """A short human-readable report (what the CLI prints)."""
        stamp = "%Y-%m-%d %H:%M UTC"
        lines = [
            f"demo data: {len(self.components)} component(s), {self.days} day(s) "
            f"{self.start:{stamp}} -> {self.end:{stamp}}, seed {self.seed}",
        ]
        width = max(len(name) for name in self.rows)
        lines += [f"  {name:<{width}}  {count:>10,} rows" for name, count in self.rows.items()]
        bad = ", ".join(f"{kind} {count}" for kind, count in self.bad_rows.items())
        lines.append(f"  bad health_log rows (for quarantine): {bad}; late rows: {self.late_rows}")
        lines.append(
            "  bad query texts: " + ", ".join(f"{kind} {count}" for kind, count in self.bad_queries.items())
        )
        lines.append(f"  injected incidents ({len(self.incidents)}, ground truth in demo.incidents):")
        lines += [
            f"    {i.started_at:%Y-%m-%d %H:%M} -> {i.ended_at:%H:%M}  {i.kind:<13}  {i.component}"
            for i in self.incidents
        ]
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class DemoData:
    """All generated frames; column names match the SQL tables (identity ``id`` columns omitted)."""

    start: datetime
    end: datetime
    days: int
    seed: int
    components: tuple[str, ...]
    health_log: pl.DataFrame
    metric_samples: pl.DataFrame
    migration_log: pl.DataFrame
    deployment_log: pl.DataFrame
    query_performance: pl.DataFrame
    incidents: pl.DataFrame
    customers: pl.DataFrame
    products: pl.DataFrame
    orders: pl.DataFrame
    order_items: pl.DataFrame
    events: pl.DataFrame
    bad_rows: dict[str, int]
    late_rows: int
    bad_queries: dict[str, int]

    def tables(self) -> dict[str, pl.DataFrame]:
        """Qualified table name -> frame, in load order (the app's tables first)."""
        return {
            "demo.customers": self.customers,
            "demo.products": self.products,
            "demo.orders": self.orders,
            "demo.order_items": self.order_items,
            "demo.events": self.events,
            "demo.incidents": self.incidents,
            "automation.health_log": self.health_log,
            "automation.metric_samples": self.metric_samples,
            "automation.migration_log": self.migration_log,
            "automation.deployment_log": self.deployment_log,
            "automation.query_performance": self.query_performance,
        }

    def incident_list(self) -> tuple[Incident, ...]:
        return tuple(Incident(**row) for row in self.incidents.iter_rows(named=True))

    def summary(self, rows: dict[str, int] | None = None) -> DemoSummary:
        """Summary of this data; ``rows`` overrides the counts (e.g. with what COPY reported)."""
        return DemoSummary(
            start=self.start,
            end=self.end,
            days=self.days,
            seed=self.seed,
            components=self.components,
            rows=rows if rows is not None else {name: frame.height for name, frame in self.tables().items()},
            bad_rows=dict(self.bad_rows),
            late_rows=self.late_rows,
            bad_queries=dict(self.bad_queries),
            incidents=self.incident_list(),
        )


# --------------------------------------------------------------------------------------------- generate


def generate(days: int, components: int, seed: int, end: datetime, app_scale: float = 1.0) -> DemoData:
    """Demo data for ``components`` components over the ``days`` days before ``end`` (exclusive).

    Deterministic for its arguments. ``end`` must be timezone-aware; ``app_scale`` sizes the demo app
    tables (1.0 = 50k orders).
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware")
    if app_scale <= 0:
        raise ValueError("app_scale must be > 0")
    names = component_names(components)
    end_us = _us(end.astimezone(UTC))
    start_us = end_us - days * _DAY
    plans = _plan_incidents(days, components, start_us, end_us, seed)

    health = _HealthArrays.concat(
        [
            _component_health(c, name, start_us, end_us, [p for p in plans if p.component == c], seed)
            for c, name in enumerate(names)
        ]
    )
    health = _inject_bad_rows(health, end_us, seed)
    deployments, plans = _deployment_log(names, start_us, end_us, plans, seed)
    app = _app_tables(end_us, seed, app_scale)
    ctx = {
        "emails": app["customers"]["email"],
        "customers": app["customers"].height,
        "products": app["products"].height,
        "orders": app["orders"].height,
        "start": start_us,
        "end": end_us,
    }
    queries, bad_queries = _query_performance(start_us, end_us, days, seed, ctx)
    incidents = pl.DataFrame(
        [
            pl.Series("kind", [p.kind for p in plans], dtype=pl.String),
            pl.Series("component", [names[p.component] for p in plans], dtype=pl.String),
            _ts("started_at", np.array([p.start for p in plans], dtype=np.int64)),
            _ts("ended_at", np.array([p.end for p in plans], dtype=np.int64)),
            pl.Series("description", [_describe(p, names[p.component]) for p in plans], dtype=pl.String),
        ]
    ).sort("started_at")
    return DemoData(
        start=_dt(start_us),
        end=_dt(end_us),
        days=days,
        seed=seed,
        components=names,
        health_log=_health_frame(health, names),
        metric_samples=_metric_samples(names, start_us, end_us, plans, seed),
        migration_log=_migration_log(start_us, end_us, seed),
        deployment_log=deployments,
        query_performance=queries,
        incidents=incidents,
        customers=app["customers"],
        products=app["products"],
        orders=app["orders"],
        order_items=app["order_items"],
        events=app["events"],
        bad_rows=dict(BAD_ROW_COUNTS),
        late_rows=LATE_ROWS,
        bad_queries=bad_queries,
    )
