"""``automation.health_log`` (a jittered check every 30-60 s per component, log-normal latency with a diurnal
curve, Poisson error events, a few bad and late rows) and per-minute ``metric_samples``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from autopilot_pipeline.demo.common import (
    _BLIP_PROBABILITY,
    _CHECK_INTERVAL_S,
    _DEGRADED_FACTOR,
    _DIURNAL_LATENCY,
    _DOWN_MESSAGES,
    _ERROR_MESSAGES,
    _ERRORS_PER_HOUR,
    _HOUR,
    _LATENCY_SIGMA,
    _MINUTE,
    _TIMEOUT_MS,
    _US,
    BAD_ROW_COUNTS,
    HEALTH_STATUSES,
    LATE_DELAY_HOURS,
    LATE_ROWS,
    METRIC_NAMES,
    UNKNOWN_STATUS,
    _base_latency,
    _load,
    _pick,
    _rng,
    _smooth_noise,
    _ts,
)
from autopilot_pipeline.demo.incidents import _effects, _Plan

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
