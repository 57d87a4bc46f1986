"""The shapes of the anomaly corpus: how each behaviour moves when all is well, and how each incident kind
changes it. Used by ``generate.py`` (same directory); see its docstring for the corpus as a whole."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from scipy.signal import lfilter

DAY = 86_400
_START = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())  # a Monday


@dataclass
class Perturb:
    """Multipliers on the shape parameters, for variant corpora (all 1: the committed corpus, same bytes).

    ``period`` stretches cycles and dwell times, ``level`` the levels and sizes of normal values, ``noise``
    the normal variation, ``rate`` how often bursts, benign spikes, errors and dropped samples happen,
    ``size`` the incidents' magnitudes."""

    period: float = 1.0
    level: float = 1.0
    noise: float = 1.0
    rate: float = 1.0
    size: float = 1.0


P = Perturb()
"""The perturbation in force (``generate.py --variant`` sets it); read by every shape and incident."""


def set_perturbation(p: Perturb) -> None:
    global P
    P = p


@dataclass
class Base:
    """A normal series: values, timestamps, and what an incident needs to know about it."""

    t: np.ndarray  # epoch seconds (int64)
    v: np.ndarray
    scale: float  # the normal variation an incident is measured against
    expected: Callable[[np.ndarray], np.ndarray] | None = None  # noise-free level at given times
    floor: float | None = 0.0  # values never go below (None: no floor)
    integer: bool = False
    period_points: int = 0  # the main cycle, in points (0: none)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- helpers


def _times(rng: np.random.Generator, n: int, step: int) -> np.ndarray:
    offset_days = int(rng.integers(0, 120))
    offset = int(rng.integers(0, DAY // step)) * step
    return _START + offset_days * DAY + offset + np.arange(n, dtype=np.int64) * step


def _ar_noise(rng: np.random.Generator, n: int, sd: float, phi: float) -> np.ndarray:
    """AR(1) noise with marginal standard deviation ``sd``."""
    e = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n)
    return lfilter([1.0], [1.0, -phi], e)


def _daily_shape(t: np.ndarray, peak_hour: float, sharpness: float) -> np.ndarray:
    """A smooth daily curve in [0, 1], 1 at ``peak_hour``; ``sharpness`` > 1 narrows the busy hours."""
    phase = 2 * np.pi * ((t % DAY) / 3600.0 - peak_hour) / 24.0
    return ((1 + np.cos(phase)) / 2) ** sharpness


def weekend(t: np.ndarray) -> np.ndarray:
    """1 on Saturday/Sunday, 0 on weekdays, with 3 h ramps at the edges (traffic does not switch instantly)."""
    days = t / DAY + 3.0  # 1970-01-01 was a Thursday: day 0 = Monday after +3
    pos = days % 7.0  # 5..7 = weekend
    ramp = 3.0 / 24.0
    up = np.clip((pos - 5.0) / ramp + 0.5, 0, 1)
    down = np.clip((7.0 - pos) / ramp + 0.5, 0, 1)
    return np.minimum(up, down) * (pos >= 5.0 - ramp)


# ---------------------------------------------------------------------------------------------- behaviours


def daily_season(rng: np.random.Generator, n: int, step: int) -> Base:
    level = rng.uniform(50, 800) * P.level
    amp = level * rng.uniform(0.3, 0.8)
    peak, sharp = rng.uniform(11, 20), rng.uniform(0.7, 2.5)
    sd = amp * rng.uniform(0.03, 0.1) * P.noise
    t = _times(rng, n, step)

    def expected(tt: np.ndarray) -> np.ndarray:
        return level - amp / 2 + amp * _daily_shape(tt, peak, sharp)

    v = expected(t) + _ar_noise(rng, n, sd, rng.uniform(0.0, 0.6))
    return Base(t, v, sd, expected, period_points=DAY // step, extra={"peak": peak})


def daily_weekly_season(rng: np.random.Generator, n: int, step: int) -> Base:
    level = rng.uniform(100, 2000) * P.level
    amp = level * rng.uniform(0.3, 0.7)
    peak, sharp = rng.uniform(10, 19), rng.uniform(0.8, 2.0)
    weekend_factor = rng.uniform(0.35, 0.75)
    sd = amp * rng.uniform(0.03, 0.08) * P.noise
    t = _times(rng, n, step)

    def expected(tt: np.ndarray) -> np.ndarray:
        day = level - amp / 2 + amp * _daily_shape(tt, peak, sharp)
        return day * (1 - (1 - weekend_factor) * weekend(tt))

    v = expected(t) + _ar_noise(rng, n, sd, rng.uniform(0.0, 0.5))
    return Base(
        t, v, sd, expected, period_points=7 * DAY // step, extra={"peak": peak, "weekly": True, "mult": True}
    )


def square_wave(rng: np.random.Generator, n: int, step: int) -> Base:
    """An on/off cycle with a fixed period and duty (a compressor, a polling worker), noise-free."""
    period = int(int(rng.integers(30, 240)) * P.period) * 60 // step
    on = max(2, int(period * rng.uniform(0.2, 0.6)))
    low = float(rng.choice([0.0, round(rng.uniform(1, 10) * P.level, 1)]))
    high = round(low + rng.uniform(20, 200) * P.level, 1)
    t = _times(rng, n, step)
    phase = int(rng.integers(0, period))
    k = (np.arange(n) + phase) % period
    v = np.where(k < on, high, low)
    return Base(t, v, high - low, None, period_points=period, extra={"low": low, "high": high, "on": on})


def batch_job(rng: np.random.Generator, n: int, step: int) -> Base:
    """A nightly batch job: exactly zero except while it runs, every day at the same time, at a flat rate."""
    start_h = rng.uniform(0, 6)
    dur_s = min(rng.uniform(0.5, 2.5) * P.period, 6.0) * 3600
    rate = round(rng.uniform(50, 500) * P.level, 0)
    t = _times(rng, n, step)
    since = (t - start_h * 3600) % DAY
    v = np.where(since < dur_s, rate, 0.0)
    return Base(
        t, v, rate, None, period_points=DAY // step, extra={"start_h": start_h, "dur_s": dur_s, "high": rate}
    )


def zero_inflated_bursty(rng: np.random.Generator, n: int, step: int) -> Base:
    """Disk writes: mostly zero, frequent bursts of random length and lognormal size."""
    p_start = min(rng.uniform(0.03, 0.12) * P.rate, 0.3)
    mean_len = max(rng.uniform(1.0, 4.0) * P.period, 1.0)
    median_size = rng.uniform(5, 500) * P.level
    starts = rng.random(n) < p_start
    lengths = rng.geometric(1 / mean_len, n)
    active = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(starts):
        active[i : i + lengths[i]] = True
    sizes = np.round(median_size * rng.lognormal(0, 0.8 * P.noise, n))
    v = np.where(active, sizes, 0.0)
    t = _times(rng, n, step)
    typical = float(np.quantile(v[v > 0], 0.9)) if (v > 0).any() else median_size
    return Base(t, v, typical, None, integer=True, extra={"median_size": median_size})


def heavy_tailed_latency(rng: np.random.Generator, n: int, step: int) -> Base:
    """p50 latency: lognormal around a slowly varying base, benign spikes (GC pauses, cold caches)."""
    base = rng.uniform(15, 250) * P.level
    sigma = rng.uniform(0.12, 0.35) * P.noise
    t = _times(rng, n, step)
    daily = 1 + rng.uniform(0, 0.25) * _daily_shape(t, rng.uniform(10, 20), 1.0)
    v = base * daily * rng.lognormal(0, sigma, n)
    benign = rng.random(n) < rng.uniform(0.002, 0.01) * P.rate
    v[benign] *= rng.uniform(2.5, 8.0, int(benign.sum()))
    v = np.round(v, 2)
    return Base(
        t, v, base * sigma, lambda tt: base * (1 + 0 * tt), extra={"base": base, "sigma": sigma, "mult": True}
    )


def two_level_toggle(rng: np.random.Generator, n: int, step: int) -> Base:
    """A metric flipping between two levels (replicas 2/4, a feature on/off), random dwell times."""
    a = rng.uniform(10, 100) * P.level
    b = a * rng.uniform(1.6, 3.5)
    sd = (b - a) * rng.uniform(0.01, 0.06) * P.noise
    dwell_a, dwell_b = rng.uniform(8, 80) * P.period, rng.uniform(8, 80) * P.period
    state = np.zeros(n, dtype=bool)
    i, s = 0, bool(rng.integers(0, 2))
    while i < n:
        d = int(rng.geometric(1 / (dwell_b if s else dwell_a)))
        state[i : i + d] = s
        i, s = i + d, not s
    v = np.where(state, b, a) + rng.normal(0, sd, n)
    return Base(_times(rng, n, step), v, sd, None, extra={"low": a, "high": b})


def slow_growth(rng: np.random.Generator, n: int, step: int) -> Base:
    """Users, rows, storage: a daily season on a level that grows steadily (20-120 % over the series)."""
    level = rng.uniform(200, 5000) * P.level
    growth = rng.uniform(0.2, 1.2)
    amp = level * rng.uniform(0.1, 0.4)
    peak = rng.uniform(10, 20)
    sd = amp * rng.uniform(0.04, 0.12) * P.noise
    t = _times(rng, n, step)
    t0, span = float(t[0]), float(t[-1] - t[0])

    def expected(tt: np.ndarray) -> np.ndarray:
        trend = level * (1 + growth * (tt - t0) / span)
        return trend + amp * (_daily_shape(tt, peak, 1.0) - 0.5) * trend / level

    v = expected(t) + _ar_noise(rng, n, sd, rng.uniform(0.2, 0.7))
    return Base(t, v, sd, expected, period_points=DAY // step, extra={"peak": peak})


def sawtooth(rng: np.random.Generator, n: int, step: int) -> Base:
    """Fill and flush: a disk or queue filling at a noisy rate, emptied when it reaches a trigger level."""
    capacity = 100.0
    base = rng.uniform(5, 30)
    trigger = rng.uniform(55, 85)
    cycle_points = rng.uniform(60, 400) * P.period
    rate = (trigger - base) / cycle_points
    inc = np.maximum(rate * (1 + rng.normal(0, 0.5 * P.noise, n)), 0)
    v = np.empty(n)
    x = base + rng.uniform(0, trigger - base)
    for i in range(n):
        x += inc[i]
        if x >= trigger:
            x = base + abs(rng.normal(0, 1))
        v[i] = x
    v = np.round(v, 3)
    return Base(
        _times(rng, n, step), v, trigger - base, None,
        period_points=int(cycle_points),
        extra={"base": base, "trigger": trigger, "rate": rate, "capacity": capacity},
    )  # fmt: skip


def poisson_errors(rng: np.random.Generator, n: int, step: int) -> Base:
    """Errors per interval: low Poisson counts, mildly busier in the day."""
    lam = rng.uniform(0.05, 2.5) * P.rate
    t = _times(rng, n, step)
    daily = 0.6 + 0.8 * _daily_shape(t, rng.uniform(10, 20), 1.0)
    v = rng.poisson(lam * daily).astype(np.float64)
    return Base(
        t, v, max(math.sqrt(lam), 1.0), lambda tt: lam * (1 + 0 * tt), integer=True, extra={"lam": lam}
    )


def random_walk_memory(rng: np.random.Generator, n: int, step: int) -> Base:
    """Resident memory: a slowly mean-reverting random walk (allocations, caches) plus small jitter."""
    mean = rng.uniform(500, 4000) * P.level
    theta = rng.uniform(0.0005, 0.005) / P.period
    walk_sd = mean * rng.uniform(0.002, 0.008) * P.noise
    x = lfilter([1.0], [1.0, -(1 - theta)], rng.normal(0, walk_sd, n))
    v = mean + x + rng.normal(0, walk_sd * 0.5, n)
    spread = walk_sd / math.sqrt(2 * theta)  # stationary sd of the walk
    return Base(_times(rng, n, step), np.round(v, 1), spread, None, extra={"mean": mean})


def irregular_sampling(rng: np.random.Generator, n: int, step: int) -> Base:
    """A pushed metric: jittered timestamps, dropped samples and outages of the collector (gaps)."""
    b = daily_season(rng, n, step)
    jitter = rng.integers(-step // 3, step // 3 + 1, n)
    t = b.t + jitter
    t[0] = b.t[0]
    keep = rng.random(n) > rng.uniform(0.02, 0.08) * P.rate
    for _ in range(int(rng.integers(3, 8))):
        g0 = int(rng.integers(0, n))
        keep[g0 : g0 + int(rng.integers(30, 360 * 60 // step))] = False
    keep[0] = True
    t = np.sort(t)
    v = b.expected(t) + (
        b.v - b.expected(b.t)
    )  # keep the noise, re-evaluate the season at the jittered times
    return Base(t, v, b.scale, b.expected, period_points=b.period_points, extra={**b.extra, "keep": keep})


def stationary_noise(rng: np.random.Generator, n: int, step: int) -> Base:
    """CPU percent of a steady worker: autocorrelated noise around a level, clipped to [0, 100]."""
    level = rng.uniform(10, 70) * P.level
    sd = rng.uniform(1, 6) * P.noise
    v = np.clip(level + _ar_noise(rng, n, sd, rng.uniform(0.3, 0.9)), 0, 100)
    return Base(_times(rng, n, step), np.round(v, 2), sd, lambda tt: level + 0 * tt, extra={"level": level})


BEHAVIOURS: dict[str, Callable[[np.random.Generator, int, int], Base]] = {
    "daily_season": daily_season,
    "daily_weekly_season": daily_weekly_season,
    "square_wave": square_wave,
    "batch_job": batch_job,
    "zero_inflated_bursty": zero_inflated_bursty,
    "heavy_tailed_latency": heavy_tailed_latency,
    "two_level_toggle": two_level_toggle,
    "slow_growth": slow_growth,
    "sawtooth": sawtooth,
    "poisson_errors": poisson_errors,
    "random_walk_memory": random_walk_memory,
    "irregular_sampling": irregular_sampling,
    "stationary_noise": stationary_noise,
}


# ----------------------------------------------------------------------------------------------- incidents
# Each injector changes ``v`` in place from ``i`` (the onset) and returns the end (exclusive) of the effect.
# ``w`` is the label window's width in points; effects that do not last are kept within half of it.


def _cap(b: Base, v: np.ndarray) -> None:
    if b.floor is not None:
        np.maximum(v, b.floor, out=v)


def spike(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int, sign: float = 1.0) -> int:
    d = int(rng.integers(1, 6))
    if "sigma" in b.extra:  # latency: a sustained slowdown of minutes, not one slow request
        d = int(rng.integers(3, 16))
        v[i : i + d] = (
            v[i : i + d] * rng.uniform(3.0, 8.0) ** P.size
            if sign > 0
            else v[i : i + d] / rng.uniform(3, 6) ** P.size
        )
        return i + d
    if "lam" in b.extra:  # an error burst
        v[i : i + d] += rng.poisson(max(8.0, 10 * b.extra["lam"]) * rng.uniform(1, 3) * P.size, d)
        return i + d
    mag = rng.uniform(6, 15) * b.scale * P.size
    if sign < 0:
        level = b.expected(b.t[i : i + d]) if b.expected is not None else v[i : i + d]
        mag = min(mag, 0.85 * float(np.min(level)))
    v[i : i + d] += sign * mag
    _cap(b, v)
    return i + d


def dip(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    return spike(rng, b, v, i, w, sign=-1.0)


def level_shift(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    sign = 1.0 if rng.random() < 0.6 else -1.0
    if "lam" in b.extra:
        v[i:] += rng.poisson(b.extra["lam"] * rng.uniform(3, 8) + 0.5, v.size - i)
    elif "mult" in b.extra or "median_size" in b.extra:
        factor = rng.uniform(1.8, 3.0) if sign > 0 else rng.uniform(0.3, 0.55)
        if "median_size" in b.extra:  # a writer that no longer stops
            v[i:] += np.round(
                b.extra["median_size"] * rng.uniform(0.5, 2) * rng.lognormal(0, 0.3, v.size - i)
            )
        else:
            v[i:] *= factor
    elif "high" in b.extra and "low" in b.extra and "on" not in b.extra:  # toggle: both levels move
        v[i:] += sign * (b.extra["high"] - b.extra["low"]) * rng.uniform(0.6, 1.2)
    else:
        v[i:] += sign * rng.uniform(4, 10) * b.scale * P.size
    _cap(b, v)
    return v.size


def variance_change(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    d = int(w * rng.uniform(0.25, 0.45))
    if "sigma" in b.extra:
        v[i : i + d] *= rng.lognormal(0, b.extra["sigma"] * rng.uniform(2.5, 4), d)
    else:
        v[i : i + d] += rng.normal(0, b.scale * rng.uniform(3, 6) * P.size, d)
    _cap(b, v)
    return i + d


def pattern_change(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    n = v.size
    if "on" in b.extra:  # the on/off cycle starts short-cycling
        period = max(4, int(b.period_points * rng.uniform(0.3, 0.5)))
        on = max(2, int(period * b.extra["on"] / b.period_points))
        d = min(n - i, max(3 * b.period_points, int(w * 0.45)))
        k = np.arange(d) % period
        v[i : i + d] = np.where(k < on, b.extra["high"], b.extra["low"])
        return i + d
    if "dur_s" in b.extra:  # the nightly job does not run
        d = int(b.extra["dur_s"] // (b.t[1] - b.t[0])) + 1
        v[i : i + d] = 0.0
        return i + d
    if "trigger" in b.extra:  # flushes come twice as often: the trigger level halved
        return _refill(
            rng, b, v, i, int(w * rng.uniform(0.3, 0.45)), (b.extra["base"] + b.extra["trigger"]) / 2
        )
    if "weekly" in b.extra:  # a weekend that looks like a weekday
        d = min(n - i, 2 * DAY // int(b.t[1] - b.t[0]))
        tt = b.t[i : i + d]
        v[i : i + d] += b.expected(tt - 3 * DAY) - b.expected(tt)  # Wednesday/Thursday's shape
        return i + d
    # the daily cycle is lost (a stuck load balancer, a broken cron): flat at the daily mean
    d = int(w * rng.uniform(0.3, 0.45))
    tt = b.t[i : i + d]
    day = b.t[i] + np.arange(0, DAY, DAY // 96)
    v[i : i + d] += float(np.mean(b.expected(day))) - b.expected(tt)
    return i + d


def _refill(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, d: int, trigger: float) -> int:
    x = float(v[i - 1])
    cap = b.extra["capacity"]
    for j in range(i, min(i + d, v.size)):
        x = min(x + max(b.extra["rate"] * (1 + rng.normal(0, 0.5)), 0.0), cap)
        if x >= trigger:
            x = b.extra["base"] + abs(rng.normal(0, 1))
        v[j] = round(x, 3)
    return min(i + d, v.size)


def contextual(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    step = int(b.t[1] - b.t[0])
    if "dur_s" in b.extra:  # the batch job runs at midday as well
        d = int(b.extra["dur_s"] // step) + 1
        v[i : i + d] = b.extra["high"]
        return i + d
    d = max(3, int(rng.uniform(1, 3) * 3600 // step))
    tt = b.t[i : i + d]
    v[i : i + d] += b.expected(tt + DAY // 2) - b.expected(tt)  # busy-hour values in the quiet hours
    return i + d


def drop_to_zero(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    step = int(b.t[1] - b.t[0])
    d = int(np.clip(rng.uniform(0.2, 4.0) * 3600 // step, 3, 0.4 * w))
    v[i : i + d] = 0.0
    return i + d


def flatline(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    d = int(w * rng.uniform(0.25, 0.45))
    v[i : i + d] = v[i - 1]
    return i + d


def slow_leak(rng: np.random.Generator, b: Base, v: np.ndarray, i: int, w: int) -> int:
    """A leak from the onset to exhaustion within the window; then the process restarts (or is cleaned up)."""
    d = int(w * rng.uniform(0.8, 0.95))
    if "trigger" in b.extra:  # the flush stops: fill until the disk is full, stay full
        return _refill(rng, b, v, i, d, trigger=float("inf"))
    rise = rng.uniform(4, 8) * b.scale * P.size
    ramp = rise * (np.arange(d) / d) ** rng.uniform(1.0, 1.5)
    v[i : i + d] += ramp
    return i + d


KINDS: dict[str, Callable[..., int]] = {
    "spike": spike,
    "dip": dip,
    "level_shift": level_shift,
    "variance_change": variance_change,
    "pattern_change": pattern_change,
    "contextual": contextual,
    "drop_to_zero": drop_to_zero,
    "flatline": flatline,
    "slow_leak": slow_leak,
}
PERMANENT = {"level_shift"}
