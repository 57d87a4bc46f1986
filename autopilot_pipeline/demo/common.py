"""What every part of the demo generator shares: the modelled constants, the time helpers and the seeded,
independent random streams (changing one part never shifts another)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

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
