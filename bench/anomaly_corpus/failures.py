"""Failure-series corpus for the 24-hour failure-risk backtest (``autopilot backtest --corpus DIR``).

Deterministic: the same command writes the same files. Each series is hourly, six weeks long
(``HOURS``), with one failure threshold and a direction (the value going above, or below, it is a
failure). Behaviours a production system shows near its limits:

* ``daily_capacity``   daily seasonal load near capacity, AR(1) noise, a slowly wandering level;
* ``weekly_capacity``  the same with a weekly pattern (quieter weekends) on top of the daily one;
* ``leak``             a slow leak towards exhaustion (memory, connections), reset by restarts;
* ``random_walk``      a random-walk-like level (weakly mean-reverting) with noise;
* ``trend_season``     a linear trend plus a daily season, with periodic clean-ups (disk usage);
* ``bursts``           a low seasonal baseline with bursts of load lasting a few hours;
* ``level_shift``      piecewise-constant levels (deploys, traffic moves) plus a daily season;
* ``traffic_floor``    daily+weekly traffic where a failure is falling *below* a floor.

Every behaviour comes in two sets: ``common`` crossings (a designed share of 30-60 % of days with a
crossing) and ``rare`` ones (5-18 %). The threshold is set from the series' own daily maxima (minima for
"below") at the matching quantile: the generator defines the problem, the forecaster only sees the value.

The calibration / held-out split is declared here (:data:`SPLITS`): the held-out part uses other seeds
AND other behaviour parameters (noise, amplitudes, persistence, leak and burst rates), so a calibration
fitted on one part and reported on the other is not scored on data it has seen nor on the same process.

Writes ``failures.json`` (the manifest: one entry per series) and one ``<name>.csv`` (timestamp,value)
per series into the output directory::

    python bench/anomaly_corpus/failures.py --out /tmp/failure_corpus [--per-set 4] [--variant b] [--first-index 0]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HOURS = 6 * 7 * 24
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
SETS = {"common": (0.30, 0.60), "rare": (0.05, 0.18)}

# Behaviour parameters per split: (low, high) ranges drawn per series. The held-out ranges differ.
SPLITS: dict[str, dict] = {
    "calibration": {
        "seed": 1,
        "noise": (0.02, 0.05),  # noise sd as a share of the seasonal amplitude scale
        "ar": (0.3, 0.6),
        "amplitude": (0.15, 0.30),
        "weekend": (0.45, 0.70),
        "leak_days": (2.0, 4.0),
        "burst_rate": (0.010, 0.025),
        "shift_days": (3.0, 6.0),
        "rw_sd": (0.010, 0.020),
    },
    "heldout": {
        "seed": 7919,
        "noise": (0.04, 0.08),
        "ar": (0.5, 0.8),
        "amplitude": (0.10, 0.22),
        "weekend": (0.30, 0.55),
        "leak_days": (3.0, 6.0),
        "burst_rate": (0.006, 0.015),
        "shift_days": (2.0, 4.0),
        "rw_sd": (0.015, 0.030),
    },
}


# Variant d's ranges (both splits): the union of the base calibration ranges and variant b's held-out ones.
_UNION_RANGES: dict[str, tuple[float, float]] = {
    "noise": (0.02, 0.10),
    "ar": (0.3, 0.9),
    "amplitude": (0.08, 0.30),
    "weekend": (0.25, 0.70),
    "leak_days": (2.0, 7.0),
    "burst_rate": (0.004, 0.025),
    "shift_days": (1.5, 6.0),
    "rw_sd": (0.010, 0.035),
}


# A variant of the corpus (``--variant b``): other seeds and perturbed parameter ranges in both splits (noisier,
# more persistent, smaller seasons, slower leaks, rarer bursts, faster shifts), so that figures measured on
# the base corpus can be checked on a process the model and its calibration were not developed on.
VARIANTS: dict[str, dict[str, dict]] = {
    "base": SPLITS,
    "b": {
        "calibration": {
            "seed": 104729,
            "noise": (0.03, 0.07),
            "ar": (0.4, 0.75),
            "amplitude": (0.12, 0.26),
            "weekend": (0.35, 0.65),
            "leak_days": (2.5, 5.0),
            "burst_rate": (0.008, 0.020),
            "shift_days": (2.5, 5.0),
            "rw_sd": (0.012, 0.025),
        },
        "heldout": {
            "seed": 15485863,
            "noise": (0.05, 0.10),
            "ar": (0.6, 0.9),
            "amplitude": (0.08, 0.18),
            "weekend": (0.25, 0.50),
            "leak_days": (4.0, 7.0),
            "burst_rate": (0.004, 0.012),
            "shift_days": (1.5, 3.0),
            "rw_sd": (0.020, 0.035),
        },
    },
    # ``--variant c``: a third corpus no calibration is ever fitted on (its held-out split is only reported):
    # wider ranges that straddle both others (quiet and noisy, weak and strong persistence, frequent bursts).
    "c": {
        "calibration": {
            "seed": 32452843,
            "noise": (0.025, 0.06),
            "ar": (0.35, 0.7),
            "amplitude": (0.14, 0.28),
            "weekend": (0.4, 0.7),
            "leak_days": (2.0, 5.0),
            "burst_rate": (0.012, 0.030),
            "shift_days": (2.0, 5.0),
            "rw_sd": (0.008, 0.022),
        },
        "heldout": {
            "seed": 49979687,
            "noise": (0.03, 0.09),
            "ar": (0.45, 0.85),
            "amplitude": (0.09, 0.25),
            "weekend": (0.3, 0.6),
            "leak_days": (2.5, 6.5),
            "burst_rate": (0.005, 0.020),
            "shift_days": (1.5, 5.0),
            "rw_sd": (0.012, 0.030),
        },
    },
    # ``--variant d``: a calibration corpus whose ranges span the others' calibration AND held-out ranges (the
    # union of the base calibration ranges and variant b's held-out ones, the two extremes), so that a
    # calibration fitted on it has seen the noisier, more persistent processes the held-out splits hold.
    # Declared before any of its series was replayed; variant c stays the corpus never fitted on.
    "d": {
        "calibration": {"seed": 67867967, **_UNION_RANGES},
        "heldout": {"seed": 86028121, **_UNION_RANGES},  # the same ranges, other seeds
    },
}


def _u(rng: np.random.Generator, rng_range: tuple[float, float]) -> float:
    return float(rng.uniform(*rng_range))


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    e = rng.normal(0.0, sd * np.sqrt(1 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for k in range(1, n):
        out[k] = phi * out[k - 1] + e[k]
    return out


def _daily(rng: np.random.Generator, n: int) -> np.ndarray:
    """A daily load shape in about [-1, 1]: peak in the afternoon, trough at night, a second harmonic."""
    i = np.arange(n)
    peak = rng.uniform(12, 17)
    shape = np.cos(2 * np.pi * (i - peak) / 24) + rng.uniform(0.1, 0.4) * np.cos(4 * np.pi * (i - peak) / 24)
    return shape / np.abs(shape).max()


def _weekend(n: int) -> np.ndarray:
    """1 on Saturdays and Sundays (the corpus starts on a Monday), 0 otherwise."""
    return ((np.arange(n) // 24) % 7 >= 5).astype(float)


def _ou(rng: np.random.Generator, n: int, tau: float, sd: float) -> np.ndarray:
    return _ar1(rng, n, float(np.exp(-1.0 / tau)), sd)


def daily_capacity(rng: np.random.Generator, p: dict) -> np.ndarray:
    n, amp = HOURS, _u(rng, p["amplitude"])
    base = 0.55 + _ou(rng, n, 120.0, 0.04)
    return 100 * (base + amp * _daily(rng, n) + _ar1(rng, n, _u(rng, p["ar"]), _u(rng, p["noise"])))


def weekly_capacity(rng: np.random.Generator, p: dict) -> np.ndarray:
    n, amp = HOURS, _u(rng, p["amplitude"])
    quiet = 1.0 - (1.0 - _u(rng, p["weekend"])) * _weekend(n)
    base = 0.45 + _ou(rng, n, 120.0, 0.03)
    load = base * quiet + amp * quiet * _daily(rng, n)
    return 100 * (load + _ar1(rng, n, _u(rng, p["ar"]), _u(rng, p["noise"])))


def leak(rng: np.random.Generator, p: dict) -> np.ndarray:
    """Memory in % growing at a steady rate between restarts (every few days, at random)."""
    n = HOURS
    period = _u(rng, p["leak_days"]) * 24
    rate = rng.uniform(35, 55) / period  # % per hour: a restart cycle climbs 35-55 points
    y = np.empty(n)
    level, next_restart = rng.uniform(30, 40), rng.exponential(period)
    for k in range(n):
        if k >= next_restart:
            level, next_restart = rng.uniform(30, 40), k + rng.uniform(0.5, 1.5) * period
        level += rate * rng.uniform(0.5, 1.5)
        y[k] = level
    noise = _ar1(rng, n, _u(rng, p["ar"]), 100 * _u(rng, p["noise"]) / 3)
    return y + noise + 2 * _daily(rng, n)


def random_walk(rng: np.random.Generator, p: dict) -> np.ndarray:
    n = HOURS
    walk = _ou(rng, n, 400.0, 100 * _u(rng, p["rw_sd"]) * np.sqrt(200))
    return 50 + walk + _ar1(rng, n, 0.3, 100 * _u(rng, p["noise"]) / 4)


def trend_season(rng: np.random.Generator, p: dict) -> np.ndarray:
    """Disk usage: grows with a daily rhythm; a clean-up every 5-9 days takes it back down."""
    n = HOURS
    i = np.arange(n)
    rate = rng.uniform(0.08, 0.16)
    cleanup = np.zeros(n)
    k = int(rng.uniform(3, 7) * 24)
    while k < n:
        cleanup[k:] += rng.uniform(0.7, 1.0) * rate * rng.uniform(5, 9) * 24
        k += int(rng.uniform(5, 9) * 24)
    growth = rate * i * (1 + 0.6 * (_daily(rng, n) + 1) / 2) / 1.3
    amp = 100 * _u(rng, p["amplitude"]) / 6
    y = (
        40
        + growth
        - cleanup
        + amp * _daily(rng, n)
        + _ar1(rng, n, _u(rng, p["ar"]), 100 * _u(rng, p["noise"]) / 4)
    )
    return y


def bursts(rng: np.random.Generator, p: dict) -> np.ndarray:
    n = HOURS
    y = 20 + 100 * _u(rng, p["amplitude"]) / 3 * _daily(rng, n)
    y = y + _ar1(rng, n, _u(rng, p["ar"]), 100 * _u(rng, p["noise"]) / 3)
    rate = _u(rng, p["burst_rate"])
    k = 0
    while True:
        k += int(rng.exponential(1 / rate)) + 1
        if k >= n:
            break
        length = int(rng.integers(1, 7))
        height = rng.lognormal(np.log(25), 0.5)
        ramp = np.minimum(1.0, (np.arange(length) + 1) / 2)
        y[k : k + length] += (height * ramp)[: max(0, min(length, n - k))]
    return y


def level_shift(rng: np.random.Generator, p: dict) -> np.ndarray:
    n = HOURS
    level = np.empty(n)
    cur, k = rng.uniform(40, 60), 0
    while k < n:
        stay = int(rng.exponential(_u(rng, p["shift_days"]) * 24)) + 12
        level[k : k + stay] = cur
        cur = float(np.clip(cur + rng.normal(0, 10), 20, 80))
        k += stay
    amp = 100 * _u(rng, p["amplitude"]) / 3
    return level + amp * _daily(rng, n) + _ar1(rng, n, _u(rng, p["ar"]), 100 * _u(rng, p["noise"]) / 3)


def traffic_floor(rng: np.random.Generator, p: dict) -> np.ndarray:
    """Requests per second (daily and weekly pattern); the failure is traffic falling below a floor."""
    return weekly_capacity(rng, p) * 10


BEHAVIOURS: dict[str, tuple[Callable[[np.random.Generator, dict], np.ndarray], str]] = {
    "daily_capacity": (daily_capacity, "above"),
    "weekly_capacity": (weekly_capacity, "above"),
    "leak": (leak, "above"),
    "random_walk": (random_walk, "above"),
    "trend_season": (trend_season, "above"),
    "bursts": (bursts, "above"),
    "level_shift": (level_shift, "above"),
    "traffic_floor": (traffic_floor, "below"),
}


def threshold(y: np.ndarray, direction: str, day_share: float) -> float:
    """The threshold crossed on about ``day_share`` of the series' calendar days."""
    days = y[: y.size // 24 * 24].reshape(-1, 24)
    if direction == "above":
        return float(np.quantile(days.max(axis=1), 1 - day_share))
    return float(np.quantile(days.min(axis=1), day_share))


def generate(per_set: int = 4, variant: str = "base", first: int = 0) -> list[dict]:
    """All series of both splits: ``per_set`` series per (split, behaviour, common|rare) set, with the
    indices ``first`` ... ``first + per_set - 1`` (a series is seeded by its index, so ``first`` gives new
    series that no smaller corpus holds)."""
    out = []
    for split, params in VARIANTS[variant].items():
        for b_idx, (name, (fn, direction)) in enumerate(BEHAVIOURS.items()):
            for s_idx, (kind, share_range) in enumerate(SETS.items()):
                for k in range(first, first + per_set):
                    rng = np.random.default_rng([params["seed"], b_idx, s_idx, k])
                    y = fn(rng, params)
                    share = float(rng.uniform(*share_range))
                    out.append(
                        {
                            "name": f"{split}-{name}-{kind}-{k}",
                            "split": split,
                            "behaviour": name,
                            "set": kind,
                            "direction": direction,
                            "threshold": round(threshold(y, direction, share), 6),
                            "designed_day_share": round(share, 4),
                            "values": np.round(y, 6),
                        }
                    )
    return out


def write(out_dir: Path, per_set: int = 4, variant: str = "base", first: int = 0) -> Path:
    """Write the corpus into ``out_dir``; returns the manifest's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    times = [(START + timedelta(hours=k)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(HOURS)]
    manifest = []
    for series in generate(per_set, variant, first):
        values = series.pop("values")
        path = out_dir / f"{series['name']}.csv"
        lines = ["timestamp,value"] + [f"{t},{v!r}" for t, v in zip(times, values.tolist(), strict=True)]
        path.write_text("\n".join(lines) + "\n")
        manifest.append({**series, "file": path.name})
    target = out_dir / "failures.json"
    doc = {"hours": HOURS, "variant": variant, "splits": VARIANTS[variant], "series": manifest}
    target.write_text(json.dumps(doc, indent=1) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--per-set", type=int, default=4, help="series per (split, behaviour, set); default 4"
    )
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="base",
        help="base (default), b, c or d: other seeds and perturbed parameters, to check against overfitting "
        "(c: never fitted on; d: wide ranges spanning the others, for fitting)",
    )
    parser.add_argument(
        "--first-index",
        type=int,
        default=0,
        help="index of each set's first series (default 0); e.g. 48 with --per-set 32 writes 32 new series "
        "per set that a corpus written with --per-set 48 does not hold",
    )
    args = parser.parse_args()
    if args.per_set < 1 or args.first_index < 0:
        parser.error("--per-set must be >= 1 and --first-index >= 0")
    print(write(args.out, args.per_set, args.variant, args.first_index))


if __name__ == "__main__":
    main()
