"""Seeded, realistic demo data for every table the pipeline reads, with injected incidents as ground truth.

Pure (numpy + polars, no database): ``generate(days, components, seed, end)`` returns the same frames for the
same arguments, so tests, benchmarks and the ``autopilot`` commands share one generator.

What it models, all vectorized (loops run over components, incidents or query shapes, never over rows):

- ``automation.health_log``: a health check every 30-60 s per component (jittered), log-normal latency with a
  per-component base, a diurnal curve (quiet at 03:00 UTC, peak at 15:00 UTC) and quieter weekends; error
  events as a Poisson process following the same load curve;
- injected incidents (outage, latency spike, error burst, slow degradation ending in an outage, bad deploy
  then rollback), never in the first two days so detectors have history, written to ``demo.incidents``;
- a small, fixed number of bad rows (null/negative latency, unknown status, exact duplicates, a future
  timestamp) and of late rows (inserted hours after the check), counted in :class:`DemoSummary`;
- per-minute ``metric_samples`` (memory, CPU, DB connections), migrations and deployments;
- a small e-commerce app (``demo.customers``, ``products``, ``orders``, ``order_items``, ``events``) and a
  ``query_performance`` workload against it that is slow exactly where an index is missing, plus a few bad
  query texts profiling must skip.

The business day is in UTC, so "business hours" below means 09:00-17:00 UTC on weekdays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

__all__ = [
    "BAD_ROW_COUNTS",
    "BAD_QUERY_COUNTS",
    "INCIDENT_KINDS",
    "QUERY_SHAPES",
    "LATE_ROWS",
    "METRIC_NAMES",
    "DemoData",
    "DemoSummary",
    "Incident",
    "component_names",
    "generate",
]

INCIDENT_KINDS = ("outage", "latency_spike", "error_burst", "degradation", "bad_deploy")
METRIC_NAMES = ("memory_usage_pct", "cpu_usage_pct", "db_connections")
HEALTH_STATUSES = ("healthy", "degraded", "down")
UNKNOWN_STATUS = "unknwn"

#: Deliberately bad health_log rows per run (fixed, so checks can assert exact counts). ``duplicate`` counts
#: the extra copies: each is identical to another row in every column but ``id``.
BAD_ROW_COUNTS: dict[str, int] = {
    "null_response_time": 5,
    "negative_response_time": 4,
    "unknown_status": 3,
    "duplicate": 6,
    "future_timestamp": 2,
}
#: Bad query texts in query_performance per run, by kind (see ``_bad_queries``).
BAD_QUERY_COUNTS: dict[str, int] = {"unparseable": 3, "huge": 2, "odd_unicode": 3}
#: Valid health checks inserted 2-6 hours after ``checked_at`` (late-arriving data for a past partition).
LATE_ROWS = 8
LATE_DELAY_HOURS = (2.0, 6.0)
#: Incident-free warm-up at the start of the period, so detectors have history before the first incident.
HISTORY_DAYS = 2

_US = 1_000_000
_MINUTE = 60 * _US
_HOUR = 3600 * _US
_DAY = 86400 * _US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_CHECK_INTERVAL_S = (30.0, 60.0)
_LATENCY_SIGMA = 0.22
_DIURNAL_LATENCY = 0.7  # latency x (1 + 0.7 * load): peak business hours are ~1.7x the night
_WEEKEND_LOAD = 0.4
_DEGRADED_FACTOR = 4.0  # a check slower than 4x the component's base latency reports "degraded"
_TIMEOUT_MS = 10_000.0
_ERRORS_PER_HOUR = 1.0  # background error events per component at average load
_BLIP_PROBABILITY = 1e-5  # isolated failed checks (network blips), outside incidents
_INCIDENT_GUARD = _HOUR
_INCIDENTS_PER_KIND_DIVISOR = 150  # one incident of each kind per 150 component-days (at least one)

_BASE_COMPONENTS: dict[str, float] = {  # name -> typical health-check latency in ms
    "api": 85.0,
    "web": 140.0,
    "database": 6.0,
    "auth": 45.0,
    "storage": 110.0,
    "realtime": 30.0,
    "edge-functions": 180.0,
    "worker": 220.0,
    "cron": 260.0,
    "search": 95.0,
    "cache": 2.5,
    "queue": 12.0,
    "email": 320.0,
    "payments": 260.0,
    "notifications": 150.0,
    "gateway": 40.0,
    "analytics": 380.0,
    "billing": 210.0,
    "media": 300.0,
    "webhooks": 160.0,
}
_REGIONS = ("eu", "us", "ap", "sa", "af")

_ERROR_MESSAGES = (
    "HTTP 500 Internal Server Error",
    "HTTP 502 Bad Gateway from upstream",
    "HTTP 503 Service Unavailable",
    "upstream request timeout after 5000 ms",
    "connection reset by peer",
    "remaining connection slots are reserved for non-replication superuser connections",
    "deadlock detected",
    "canceling statement due to statement timeout",
    "JWT expired",
    "rate limit exceeded (429)",
    "TypeError: Cannot read properties of undefined (reading 'id')",
    "ECONNREFUSED 10.0.3.12:5432",
)
_DOWN_MESSAGES = ("connection refused", f"timeout after {int(_TIMEOUT_MS)} ms")

_STREAM = {  # independent random streams, so changing one part never shifts another
    "checks": 1,
    "incidents": 2,
    "metrics": 3,
    "migrations": 4,
    "deployments": 5,
    "bad_rows": 6,
    "app": 7,
    "queries": 8,
}


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


# --------------------------------------------------------------------------------------------- helpers


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def _ts(name: str, us: np.ndarray) -> pl.Series:
    """Epoch microseconds -> UTC-aware datetime series."""
    return pl.Series(name, np.asarray(us, dtype=np.int64)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _rng(seed: int, stream: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAM[stream], *more])


def _pick(values: tuple[str, ...] | list[str], codes: np.ndarray, name: str) -> pl.Series:
    """Vectorized lookup ``values[code]``; negative codes become null."""
    codes = np.asarray(codes, dtype=np.int64)
    lookup = pl.Series(name, list(values), dtype=pl.String)
    out = lookup.gather(np.where(codes < 0, 0, codes))
    if (codes < 0).any():
        out = pl.select(pl.when(pl.Series(codes >= 0)).then(out).otherwise(None).alias(name)).to_series()
    return out.alias(name)


def _load(us: np.ndarray) -> np.ndarray:
    """Traffic load in [0, 1]: a diurnal curve (min 03:00, max 15:00 UTC), damped on weekends."""
    us = np.asarray(us, dtype=np.int64)
    hour = (us % _DAY) / _HOUR
    diurnal = 0.5 - 0.5 * np.cos(2 * np.pi * (hour - 3.0) / 24.0)
    weekday = ((us // _DAY) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return np.where(weekday >= 5, diurnal * _WEEKEND_LOAD, diurnal)


def _smooth_noise(rng: np.random.Generator, n: int, span: int = 30) -> np.ndarray:
    """Unit-variance noise correlated over ~``span`` samples (metrics drift instead of jumping)."""
    kernel = np.exp(-np.arange(span) / (span / 3.0))
    kernel /= np.sqrt((kernel**2).sum())
    return np.convolve(rng.standard_normal(n + span - 1), kernel, mode="valid")


def component_names(count: int) -> tuple[str, ...]:
    """``count`` realistic names: the base list, then regional variants (``api-eu``), then numbered ones."""
    if count < 1:
        raise ValueError("components must be >= 1")
    names = list(_BASE_COMPONENTS)
    names += [f"{name}-{region}" for region in _REGIONS for name in _BASE_COMPONENTS]
    n = 2
    while len(names) < count:
        names += [f"{name}-{n}" for name in _BASE_COMPONENTS]
        n += 1
    return tuple(names[:count])


def _base_latency(name: str) -> float:
    for base, latency in _BASE_COMPONENTS.items():
        if name == base or name.startswith(base + "-"):
            return latency
    raise KeyError(name)


# --------------------------------------------------------------------------------------------- incidents


@dataclass(frozen=True)
class _Plan:
    """An incident as the generator uses it (times in epoch microseconds)."""

    kind: str
    component: int
    start: int
    end: int
    factor: float = 1.0  # latency multiplier (spike, deploy) or final multiplier (degradation)
    outage_start: int = 0  # degradation: when the ramp ends in a hard outage
    detail: str = ""


def _durations(kind: str, rng: np.random.Generator) -> tuple[int, int]:
    """(total duration, outage part) in microseconds for one incident of ``kind``."""
    minutes = {
        "outage": (20, 60),
        "latency_spike": (15, 45),
        "error_burst": (30, 60),
        "bad_deploy": (25, 40),
    }
    if kind == "degradation":
        ramp = int(rng.uniform(6, 12) * _HOUR) // _US * _US
        outage = int(rng.uniform(20, 60)) * _MINUTE
        return ramp + outage, outage
    low, high = minutes[kind]
    return int(rng.uniform(low, high) * 60) * _US, 0


def _plan_incidents(days: int, n_components: int, start: int, end: int, seed: int) -> list[_Plan]:
    """Non-overlapping incidents (one global timeline, a guard hour apart) after the warm-up days."""
    if days <= HISTORY_DAYS:
        return []
    rng = _rng(seed, "incidents")
    window_start, window_end = start + HISTORY_DAYS * _DAY, end - _HOUR
    worst_case = 13 * _HOUR + 4 * _HOUR + len(INCIDENT_KINDS) * _INCIDENT_GUARD  # one round of every kind
    capacity = max(1, (window_end - window_start) // worst_case)
    per_kind = max(1, min(round(days * n_components / _INCIDENTS_PER_KIND_DIVISOR), capacity))
    kinds = [kind for kind in INCIDENT_KINDS for _ in range(per_kind)]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    durations = [_durations(kind, rng) for kind in kinds]
    components = np.resize(rng.permutation(n_components), len(kinds))
    free = (window_end - window_start) - sum(d for d, _ in durations) - _INCIDENT_GUARD * (len(kinds) - 1)
    if free < 0:  # cannot happen with the capacity cap above; kept as a loud guard
        raise ValueError("demo period too short for the planned incidents")
    gaps = (rng.dirichlet(np.ones(len(kinds) + 1)) * free).astype(np.int64) // _US * _US
    plans: list[_Plan] = []
    cursor = window_start
    for i, (kind, (duration, outage)) in enumerate(zip(kinds, durations, strict=True)):
        cursor += int(gaps[i])
        begin, finish = cursor, cursor + duration
        factor = {
            "latency_spike": rng.uniform(8.0, 12.0),
            "degradation": rng.uniform(5.0, 8.0),
            "bad_deploy": rng.uniform(2.5, 4.0),
        }.get(kind, 1.0)
        plans.append(_Plan(kind, int(components[i]), begin, finish, float(factor), finish - outage))
        cursor = finish + _INCIDENT_GUARD
    return plans


@dataclass
class _Effects:
    """Per-timestamp incident effects for one component."""

    latency: np.ndarray  # multiplier
    errors: np.ndarray  # error-rate multiplier
    degraded_p: np.ndarray  # probability a check is forced to "degraded"
    down: np.ndarray  # bool: hard down
    ramp: np.ndarray  # degradation progress in [0, 1] (0 outside)
    cpu: np.ndarray  # additive percentage points
    connections: np.ndarray  # multiplier
    in_incident: np.ndarray  # bool


def _effects(us: np.ndarray, plans: list[_Plan]) -> _Effects:
    n = us.shape[0]
    fx = _Effects(
        latency=np.ones(n),
        errors=np.ones(n),
        degraded_p=np.zeros(n),
        down=np.zeros(n, dtype=bool),
        ramp=np.zeros(n),
        cpu=np.zeros(n),
        connections=np.ones(n),
        in_incident=np.zeros(n, dtype=bool),
    )
    for plan in plans:
        lo, hi = np.searchsorted(us, [plan.start, plan.end])
        if lo == hi:
            continue
        part = slice(lo, hi)
        fx.in_incident[part] = True
        if plan.kind == "outage":
            fx.down[part] = True
            fx.errors[part] = 5.0
        elif plan.kind == "latency_spike":
            fx.latency[part] = plan.factor
            fx.errors[part] = 2.0
            fx.cpu[part] = 25.0
            fx.connections[part] = 1.8
        elif plan.kind == "error_burst":
            fx.latency[part] = 1.3
            fx.errors[part] = 20.0
            fx.degraded_p[part] = 0.3
            fx.cpu[part] = 10.0
        elif plan.kind == "bad_deploy":
            fx.latency[part] = plan.factor
            fx.errors[part] = 20.0
            fx.degraded_p[part] = 0.25
            fx.cpu[part] = 15.0
            fx.connections[part] = 1.3
        elif plan.kind == "degradation":
            mid = int(np.searchsorted(us, plan.outage_start))
            frac = (us[lo:mid] - plan.start) / max(plan.outage_start - plan.start, 1)
            fx.ramp[lo:mid] = frac
            fx.latency[lo:mid] = 1.0 + (plan.factor - 1.0) * frac**3
            fx.errors[lo:mid] = 1.0 + 4.0 * frac**2
            fx.cpu[lo:mid] = 30.0 * frac**2
            fx.connections[lo:mid] = 1.0 + 0.5 * frac
            fx.down[mid:hi] = True
            fx.errors[mid:hi] = 5.0
            fx.ramp[mid:hi] = 1.0
    return fx


def _describe(plan: _Plan, name: str) -> str:
    minutes = (plan.end - plan.start) / _MINUTE
    if plan.kind == "outage":
        return f"{name} hard down for {minutes:.0f} min: checks refused or time out ({_TIMEOUT_MS:.0f} ms)"
    if plan.kind == "latency_spike":
        return f"{name} latency x{plan.factor:.1f} for {minutes:.0f} min"
    if plan.kind == "error_burst":
        return f"{name} errors at ~20x the normal rate for {minutes:.0f} min, some degraded checks"
    if plan.kind == "degradation":
        ramp_h = (plan.outage_start - plan.start) / _HOUR
        down_min = (plan.end - plan.outage_start) / _MINUTE
        return (
            f"{name} memory leak: latency (to x{plan.factor:.1f}) and memory_usage_pct rise for "
            f"{ramp_h:.1f} h, then hard down for {down_min:.0f} min until restart"
        )
    return (
        f"{name} {plan.detail}: errors ~20x and latency x{plan.factor:.1f} for {minutes:.0f} min "
        "until the rollback finished"
    )


# --------------------------------------------------------------------------------------------- health_log


@dataclass
class _HealthArrays:
    """Columnar health_log rows before they become a frame (codes index into the lookup tuples)."""

    checked: np.ndarray
    component: np.ndarray
    kind: np.ndarray  # 0 health_check, 1 error
    status: np.ndarray  # index into _STATUS_CODES
    response: np.ndarray  # NaN = null
    message: np.ndarray  # index into _MESSAGES, -1 = null
    inserted: np.ndarray
    in_incident: np.ndarray

    def take(self, index: np.ndarray) -> _HealthArrays:
        return _HealthArrays(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    @staticmethod
    def concat(parts: list[_HealthArrays]) -> _HealthArrays:
        return _HealthArrays(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _HealthArrays.__dataclass_fields__)
        )


_STATUS_CODES = (*HEALTH_STATUSES, "error", UNKNOWN_STATUS)
_MESSAGES = (*_ERROR_MESSAGES, *_DOWN_MESSAGES)
_KINDS = ("health_check", "error")


def _component_health(
    c: int, name: str, start: int, end: int, plans: list[_Plan], seed: int
) -> _HealthArrays:
    rng = _rng(seed, "checks", c)
    base = _base_latency(name) * float(rng.lognormal(0.0, 0.15))
    # health checks: jittered 30-60 s intervals
    low, high = _CHECK_INTERVAL_S
    n_max = int((end - start) / _US / low) + 2
    offsets = rng.uniform(0.0, high) + np.cumsum(rng.uniform(low, high, n_max))
    checked = start + (offsets * _US).astype(np.int64)
    checked = checked[checked < end]
    n = checked.shape[0]
    fx = _effects(checked, plans)
    load = _load(checked)
    response = base * (1.0 + _DIURNAL_LATENCY * load) * np.exp(_LATENCY_SIGMA * rng.standard_normal(n))
    response *= fx.latency
    status = np.where(response > _DEGRADED_FACTOR * base, 1, 0)
    status = np.where(rng.random(n) < fx.degraded_p, 1, status)
    blip = (rng.random(n) < _BLIP_PROBABILITY) & ~fx.in_incident
    down = fx.down | blip
    status = np.where(down, 2, status)
    timed_out = rng.random(n) < 0.5
    response = np.where(down, np.where(timed_out, _TIMEOUT_MS, np.nan), np.round(response, 2))
    message = np.where(down, np.where(timed_out, len(_ERROR_MESSAGES) + 1, len(_ERROR_MESSAGES)), -1)
    checks = _HealthArrays(
        checked=checked,
        component=np.full(n, c, dtype=np.int32),
        kind=np.zeros(n, dtype=np.int8),
        status=status.astype(np.int8),
        response=response,
        message=message.astype(np.int32),
        inserted=checked + (rng.uniform(0.2, 5.0, n) * _US).astype(np.int64),
        in_incident=fx.in_incident | blip,
    )
    # error events: a Poisson process per minute following load and incident multipliers
    minutes = np.arange(start - start % _MINUTE, end, _MINUTE, dtype=np.int64)
    mfx = _effects(minutes, plans)
    # incidents add (multiplier - 1) x the average rate, so a burst at night is as loud as one at noon
    rate = _ERRORS_PER_HOUR / 60.0 * (0.3 + 1.4 * _load(minutes) + (mfx.errors - 1.0))
    counts = rng.poisson(rate)
    at = np.repeat(minutes, counts) + (rng.random(int(counts.sum())) * _MINUTE).astype(np.int64)
    at = np.sort(at[(at >= start) & (at < end)])
    m = at.shape[0]
    errors = _HealthArrays(
        checked=at,
        component=np.full(m, c, dtype=np.int32),
        kind=np.ones(m, dtype=np.int8),
        status=np.full(m, 3, dtype=np.int8),
        response=np.full(m, np.nan),
        message=rng.integers(0, len(_ERROR_MESSAGES), m).astype(np.int32),
        inserted=at + (rng.uniform(0.05, 2.0, m) * _US).astype(np.int64),
        in_incident=_effects(at, plans).in_incident,
    )
    rows = _HealthArrays.concat([checks, errors])
    return rows.take(np.flatnonzero(rows.inserted < end))  # not yet written at ``end``


def _inject_bad_rows(rows: _HealthArrays, end: int, seed: int) -> _HealthArrays:
    """Corrupt a few healthy checks, add exact duplicates and future rows, and delay a few inserts."""
    rng = _rng(seed, "bad_rows")
    counts = BAD_ROW_COUNTS
    candidates = np.flatnonzero(
        (rows.kind == 0) & (rows.status == 0) & ~rows.in_incident & (rows.checked < end - 7 * _HOUR)
    )
    in_place = counts["null_response_time"] + counts["negative_response_time"] + counts["unknown_status"]
    needed = in_place + LATE_ROWS + counts["duplicate"] + counts["future_timestamp"]
    if candidates.shape[0] < needed:
        raise ValueError("demo period too short to place the bad rows")
    chosen = rng.choice(candidates, needed, replace=False)
    cuts = np.cumsum(
        [
            counts["null_response_time"],
            counts["negative_response_time"],
            counts["unknown_status"],
            LATE_ROWS,
            counts["duplicate"],
        ]
    )
    null_rt, negative, unknown, late, duplicate, future = np.split(chosen, cuts)
    rows.response[null_rt] = np.nan
    rows.response[negative] = -np.abs(rows.response[negative])
    rows.status[unknown] = _STATUS_CODES.index(UNKNOWN_STATUS)
    rows.inserted[late] = rows.checked[late] + (rng.uniform(*LATE_DELAY_HOURS, late.shape[0]) * _HOUR).astype(
        np.int64
    )
    copies = rows.take(duplicate)
    ahead = rows.take(future)  # well-formed checks whose clock runs ahead: checked_at after the period
    ahead.checked = end + (rng.uniform(1.0, 48.0, future.shape[0]) * _HOUR).astype(np.int64)
    ahead.inserted = end - (rng.uniform(1.0, 30.0, future.shape[0]) * _MINUTE).astype(np.int64)
    return _HealthArrays.concat([rows, copies, ahead])


def _health_frame(rows: _HealthArrays, names: tuple[str, ...]) -> pl.DataFrame:
    # insertion order (ids then grow with inserted_at, as in the monitored app); sorting integer codes
    # before they become strings keeps this cheap
    rows = rows.take(np.lexsort((rows.checked, rows.kind, rows.component, rows.inserted)))
    return pl.DataFrame(
        [
            _ts("checked_at", rows.checked),
            _pick(names, rows.component, "source"),
            _pick(_KINDS, rows.kind, "kind"),
            _pick(_STATUS_CODES, rows.status, "status"),
            pl.Series("response_time_ms", rows.response, nan_to_null=True),
            _pick(_MESSAGES, rows.message, "message"),
            pl.repeat("{}", rows.checked.shape[0], dtype=pl.String, eager=True).alias("metadata"),
            _ts("inserted_at", rows.inserted),
        ]
    )


# --------------------------------------------------------------------------------------------- metrics


def _component_metrics(
    c: int, name: str, start: int, end: int, plans: list[_Plan], seed: int
) -> dict[str, np.ndarray]:
    """One component's samples, long format, as arrays (``metric`` indexes METRIC_NAMES)."""
    rng = _rng(seed, "metrics", c)
    offset = int(rng.integers(0, 60)) * _US
    first = start - start % _MINUTE + offset
    sampled = np.arange(first if first >= start else first + _MINUTE, end, _MINUTE, dtype=np.int64)
    sampled = sampled + (rng.random(sampled.shape[0]) * 0.5 * _US).astype(np.int64)
    fx = _effects(sampled, plans)
    keep = ~fx.down  # a component that is down is not scraped
    n = sampled.shape[0]
    load = _load(sampled)
    memory = rng.uniform(30.0, 55.0) + 6.0 * load + 1.5 * _smooth_noise(rng, n, 60)
    leak_target = rng.uniform(97.0, 99.5)
    memory = np.where(fx.ramp > 0, memory + (leak_target - memory) * fx.ramp**1.5, memory)
    cpu = rng.uniform(8.0, 20.0) + 45.0 * load + 4.0 * _smooth_noise(rng, n, 10) + fx.cpu
    pool = 200.0 if name.startswith("database") else float(rng.integers(20, 60))
    connections = (0.1 * pool + 0.55 * pool * load + 0.04 * pool * _smooth_noise(rng, n, 15)) * fx.connections
    values = (
        np.round(np.clip(memory, 1.0, 99.9), 2),
        np.round(np.clip(cpu, 0.5, 100.0), 2),
        np.round(np.clip(connections, 1.0, pool)),
    )
    inserted = sampled + (rng.uniform(0.5, 3.0, n) * _US).astype(np.int64)
    keep &= inserted < end  # not yet written at ``end``
    at, inserted = sampled[keep], inserted[keep]
    m = at.shape[0]
    return {
        "sampled": np.tile(at, len(METRIC_NAMES)),
        "component": np.full(m * len(METRIC_NAMES), c, dtype=np.int32),
        "metric": np.repeat(np.arange(len(METRIC_NAMES), dtype=np.int8), m),
        "value": np.concatenate([v[keep] for v in values]),
        "inserted": np.tile(inserted, len(METRIC_NAMES)),
    }


def _metric_samples(
    names: tuple[str, ...], start: int, end: int, plans: list[_Plan], seed: int
) -> pl.DataFrame:
    parts = [
        _component_metrics(c, name, start, end, [p for p in plans if p.component == c], seed)
        for c, name in enumerate(names)
    ]
    cols = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    order = np.lexsort((cols["metric"], cols["component"], cols["inserted"]))
    cols = {key: value[order] for key, value in cols.items()}
    return pl.DataFrame(
        [
            _ts("sampled_at", cols["sampled"]),
            _pick(names, cols["component"], "source"),
            _pick(METRIC_NAMES, cols["metric"], "metric_name"),
            pl.Series("value", cols["value"]),
            pl.repeat("{}", cols["value"].shape[0], dtype=pl.String, eager=True).alias("labels"),
            _ts("inserted_at", cols["inserted"]),
        ]
    )


# --------------------------------------------------------------------------------------------- releases

_MIGRATION_NAMES = (
    "add_orders_status_column",
    "create_table_refunds",
    "backfill_customer_tier",
    "add_events_payload_gin",
    "drop_legacy_sessions",
    "rename_products_title_to_name",
    "add_check_constraint_order_totals",
    "create_view_daily_revenue",
    "alter_customers_email_citext",
    "partition_events_by_month",
    "add_column_orders_shipped_at",
    "create_function_touch_updated_at",
)
_MIGRATION_ERRORS = (
    'column "shipped_at" of relation "orders" already exists',
    "canceling statement due to lock timeout",
    "deadlock detected",
    "canceling statement due to statement timeout",
    'could not create unique index "customers_email_key": key (email) is duplicated',
)


def _business_times(rng: np.random.Generator, days_us: np.ndarray, start: int, end: int) -> np.ndarray:
    """A time between 08:00 and 19:00 UTC on each given day, kept inside [start, end)."""
    at = days_us + ((8.0 + 11.0 * rng.random(days_us.shape[0])) * _HOUR).astype(np.int64)
    return at[(at >= start) & (at < end)]


def _migration_log(start: int, end: int, seed: int) -> pl.DataFrame:
    rng = _rng(seed, "migrations")
    days = np.arange(start - start % _DAY, end, _DAY, dtype=np.int64)
    per_day = rng.integers(1, 4, days.shape[0])
    started = np.sort(_business_times(rng, np.repeat(days, per_day), start, end))
    n = started.shape[0]
    outcome = rng.random(n)
    failed = outcome < 0.10
    rolled_back = (outcome >= 0.10) & (outcome < 0.15)
    duration = np.round(rng.lognormal(np.log(1200.0), 0.9, n) * np.where(failed, 0.4, 1.0), 1)
    error = np.where(failed, rng.integers(0, len(_MIGRATION_ERRORS), n), -1)
    return pl.DataFrame(
        [
            _ts("started_at", started).dt.strftime("%Y%m%d%H%M%S").alias("version"),
            _pick(_MIGRATION_NAMES, rng.integers(0, len(_MIGRATION_NAMES), n), "name"),
            _ts("started_at", started),
            _ts("finished_at", started + (duration * 1000).astype(np.int64)),
            pl.Series("duration_ms", duration),
            _pick(
                ("success", "failed", "rolled_back"),
                np.where(failed, 1, np.where(rolled_back, 2, 0)),
                "status",
            ),
            pl.Series("rolled_back", rolled_back),
            _pick(_MIGRATION_ERRORS, error, "error"),
            pl.Series("metadata", ['{"applied_by": "ci"}'] * n, dtype=pl.String),
        ]
    )


def _deployment_log(
    names: tuple[str, ...], start: int, end: int, plans: list[_Plan], seed: int
) -> tuple[pl.DataFrame, list[_Plan]]:
    """Background deployments plus, for each bad_deploy incident, the bad release and its rollback.

    Returns the frame and the plans with the bad release's versions filled into ``detail``.
    """
    rng = _rng(seed, "deployments")
    days = np.arange(start - start % _DAY, end, _DAY, dtype=np.int64)
    weekday = ((days // _DAY) + 3) % 7 < 5
    columns: dict[str, list] = {
        k: [] for k in ("source", "version", "started_at", "duration", "status", "rb", "meta")
    }
    updated: list[_Plan] = list(plans)
    for c, name in enumerate(names):
        per_day = rng.poisson(np.where(weekday, 1.5, 0.3))
        started = np.sort(_business_times(rng, np.repeat(days, per_day), start, end))
        bad = [i for i, p in enumerate(plans) if p.kind == "bad_deploy" and p.component == c]
        for i in bad:  # keep routine deploys away from the bad one, so its rollback is unambiguous
            started = started[np.abs(started - plans[i].start) > 3 * _HOUR]
        duration = np.round(rng.lognormal(np.log(90_000.0), 0.35, started.shape[0]), 0)
        outcome = rng.random(started.shape[0])
        status = np.where(outcome < 0.05, "failed", np.where(outcome < 0.08, "rolled_back", "success"))
        release = [
            (int(s), float(d), str(st), "deploy") for s, d, st in zip(started, duration, status, strict=True)
        ]
        for i in bad:
            plan = plans[i]
            deploy_ms = float(np.round(rng.uniform(60_000, 120_000)))
            release.append((plan.start - int(deploy_ms * 1000), deploy_ms, "bad", "deploy"))
            rollback_ms = float(np.round(rng.uniform(40_000, 90_000)))
            release.append((plan.end - int(rollback_ms * 1000), rollback_ms, "success", f"rollback:{i}"))
        release.sort()
        minor, patch = int(rng.integers(3, 20)), int(rng.integers(0, 10))
        live = previous = f"v1.{minor}.{patch}"  # version running before the period
        for started_us, duration_ms, outcome_status, action in release:
            if action.startswith("rollback:"):
                i = int(action.split(":")[1])
                version, meta = previous, f'{{"deployed_by": "oncall", "rollback_of": "{live}"}}'
                updated[i] = _Plan(
                    **{**plans[i].__dict__, "detail": f"deploy {live} (rolled back to {previous})"}
                )
                live = previous
                row_status, rolled = "success", False
            else:
                patch += 1
                if rng.random() < 0.15:
                    minor, patch = minor + 1, 0
                version = f"v1.{minor}.{patch}"
                sha = "".join(rng.choice(list("0123456789abcdef"), 7))
                meta = f'{{"deployed_by": "ci", "commit": "{sha}"}}'
                row_status = "failed" if outcome_status == "bad" else outcome_status
                rolled = outcome_status in ("bad", "rolled_back")
                if outcome_status in ("success", "bad"):
                    previous, live = live, version
            columns["source"].append(name)
            columns["version"].append(version)
            columns["started_at"].append(started_us)
            columns["duration"].append(duration_ms)
            columns["status"].append(row_status)
            columns["rb"].append(rolled)
            columns["meta"].append(meta)
    started = np.asarray(columns["started_at"], dtype=np.int64)
    duration = np.asarray(columns["duration"], dtype=np.float64)
    frame = pl.DataFrame(
        [
            pl.Series("source", columns["source"], dtype=pl.String),
            pl.Series("version", columns["version"], dtype=pl.String),
            _ts("started_at", started),
            _ts("finished_at", started + (duration * 1000).astype(np.int64)),
            pl.Series("duration_ms", duration),
            pl.Series("status", columns["status"], dtype=pl.String),
            pl.Series("rolled_back", columns["rb"], dtype=pl.Boolean),
            pl.Series("metadata", columns["meta"], dtype=pl.String),
        ]
    ).sort(["started_at", "source"], maintain_order=True)
    return frame, updated


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
