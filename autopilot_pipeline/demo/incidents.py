"""Injected incidents (outage, latency spike, error burst, slow degradation ending in an outage, bad deploy
then rollback), never in the first two days so detectors have history; their effects on checks and errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autopilot_pipeline.demo.common import (
    _DAY,
    _HOUR,
    _INCIDENT_GUARD,
    _INCIDENTS_PER_KIND_DIVISOR,
    _MINUTE,
    _TIMEOUT_MS,
    _US,
    HISTORY_DAYS,
    INCIDENT_KINDS,
    _rng,
)

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
