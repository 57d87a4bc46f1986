"""The detector's memory of its own alarms (aiops.detector_recur): an event that alarmed several times
before is recurring behaviour, not news; a larger one, or another kind, still is (issue 14: floods on real
data, "the recurring pattern is never learned").

Seeded series generated here; the detector's shipped threshold, never adjusted."""

from __future__ import annotations

import numpy as np
import pytest

from autopilot_pipeline.aiops.detector import score_batch
from autopilot_pipeline.aiops.detector_recur import ALARM_SPAN, RECUR_ALARMS, AlarmMemory, inside_bulk

# the same fill-and-flush whose per-flush alarms test_detector_recurring marks as a known weakness
from .test_detector_recurring import noisy_sawtooth

N = 8000
ONSET = 6000


def _events(
    rows: list[int], kind: int, side: int, x: float, r: float, q: float, p: float = 1e-6
) -> AlarmMemory:
    mem = AlarmMemory()
    n = len(rows)
    mem.add(
        np.ones(n, dtype=bool),
        np.array(rows),
        np.zeros(n, dtype=np.int64),
        np.full(n, kind),
        np.full(n, side),
        np.full(n, x),
        np.full(n, r),
        np.full(n, q),
        np.full(n, p),
    )
    return mem


def _floor(
    mem: AlarmMemory,
    row: int,
    kind: int,
    side: int,
    x: float,
    r: float,
    q: float,
    inside: bool,
    p: float = 1e-6,
) -> float:
    one = np.ones(1)
    return float(
        mem.floor(
            np.array([row]),
            np.zeros(1, dtype=np.int64),
            np.array([kind]),
            np.array([side]),
            one * x,
            one * r,
            one * q,
            one * p,
            np.array([inside]),
        )[0]
    )


def test_memory_floors_a_fourth_flush_like_three_before_at_their_frequency() -> None:
    mem = _events([200, 400, 600], kind=0, side=-1, x=23.0, r=-49.0, q=-12.0)
    assert _floor(mem, 999, 0, -1, 23.5, -48.0, -11.0, False) == pytest.approx(3 / 1000)
    # A drop to zero after dips to 23, a dip twice as deep, the other side, another kind: all still news.
    assert _floor(mem, 999, 0, -1, 0.0, -72.0, -18.0, False) == 0.0
    assert _floor(mem, 999, 0, -1, 23.0, -100.0, -25.0, True) == 0.0
    assert _floor(mem, 999, 0, 1, 72.0, 49.0, 12.0, True) == 0.0
    assert _floor(mem, 999, 3, -1, 23.0, -49.0, 0.0, True) == 0.0
    # Two are not enough; events older than the span are forgotten; a block sees only earlier ones.
    assert _floor(_events([200, 400], 0, -1, 23.0, -49.0, -12.0), 999, 0, -1, 23.0, -49.0, -12.0, True) == 0.0
    assert _floor(mem, 600 + ALARM_SPAN + 1, 0, -1, 23.0, -49.0, -12.0, True) == 0.0
    assert _floor(mem, 600, 0, -1, 23.0, -49.0, -12.0, True) == 0.0


def test_memory_keeps_an_episodes_most_extreme_point() -> None:
    """An episode's first alarm is often its mildest: the record takes the episode's extremes."""
    mem = AlarmMemory()
    rows = np.array([100, 101, 102, 300, 500])
    new = np.array([True, False, False, True, True])
    z = np.zeros(5, dtype=np.int64)
    mem.add(
        new,
        rows,
        z,
        z,
        np.ones(5, dtype=np.int64),
        np.array([55.0, 61, 58, 60, 60]),
        np.array([3.0, 9, 6, 8, 8]),
        np.ones(5),
        np.array([1e-5, 1e-7, 1e-6, 1e-6, 1e-6]),
    )
    assert mem.events[0].shape == (3, 7)
    assert mem.events[0][0, 6] == 1e-7
    assert mem.events[0][0, 3:5].tolist() == [61.0, 9.0]
    assert _floor(mem, 900, 0, 1, 60.0, 8.5, 1.0, False) == pytest.approx(3 / 901)


def test_windowed_tests_also_match_on_the_p_value() -> None:
    """A borderline spread alarm after every flush, while the running scale (and so the raw spread) creeps
    up: the same event by its p-value; a far rarer one is news."""
    mem = _events([1000, 2000, 3000], kind=3, side=1, x=27.0, r=0.5, q=0.002, p=9e-5)
    assert _floor(mem, 4000, 3, 1, 27.0, 0.5, 0.015, True, p=8e-5) == pytest.approx(3 / 4001)
    assert _floor(mem, 4000, 3, 1, 27.0, 0.5, 0.015, True, p=1e-7) == 0.0
    drift = _events([1000, 2000, 3000], kind=2, side=-1, x=40.0, r=-1.0, q=-5.0, p=1e-5)
    assert _floor(drift, 4000, 2, -1, 40.0, -1.0, -9.0, True, p=2e-6) == pytest.approx(3 / 4001)
    assert _floor(drift, 4000, 2, -1, 40.0, -1.0, -11.0, True, p=1e-7) == 0.0


def test_inside_bulk_is_the_recent_1st_to_99th_percentile() -> None:
    vals = np.arange(1000.0)[:, None]
    got = inside_bulk(vals, 1000, np.zeros(3, dtype=np.int64), np.array([480.0, 700.0, 1500.0]))
    assert got.tolist() == [False, True, False]  # the last 512 values are 488..999
    assert not inside_bulk(vals, 50, np.zeros(1, dtype=np.int64), np.array([10.0]))[0]  # too few


def pulses(seed: int, height: float = 12.0) -> np.ndarray:
    """A job that runs for 6 points every 700-1100 points (not on a fixed beat), 12 noise sd above the
    base: its edges are far from anything the noise shows, so each run alarmed, run after run."""
    rng = np.random.default_rng(seed)
    x = 50 + rng.normal(0, 1, N)
    t = 600
    while t < N - 50:
        x[t : t + 6] += height * rng.uniform(0.9, 1.1)
        t += int(rng.integers(700, 1100))
    return x


def _bigger_run(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[ONSET : ONSET + 6] += 30
    return y


def _outage(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[ONSET : ONSET + 30] = 0.0
    return y


@pytest.fixture(scope="module")
def flags() -> dict[str, np.ndarray]:
    cols = {f"normal/{s}": pulses(s) for s in (1, 2, 3, 4)}
    cols["bigger_run"] = _bigger_run(pulses(9))
    cols["outage"] = _outage(pulses(9))
    res = score_batch(np.column_stack(list(cols.values())))
    return {name: res.is_anomaly[:, j] for j, name in enumerate(cols)}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_recurring_job_alarms_at_most_a_few_times_then_is_learned(flags, seed: int) -> None:
    f = flags[f"normal/{seed}"]
    assert f.sum() <= RECUR_ALARMS + 1, np.flatnonzero(f)


@pytest.mark.parametrize("name", ["bigger_run", "outage"])
def test_a_larger_run_or_an_outage_is_still_caught(flags, name: str) -> None:
    f = flags[name]
    assert f[ONSET : ONSET + 10].any(), np.flatnonzero(f)


def test_a_fill_and_flush_with_a_drifting_period_is_learned() -> None:
    """Misplaced flushes alarm while they are new (at most a few of each direction), then never again."""
    res = score_batch(np.column_stack([noisy_sawtooth(s) for s in range(1, 9)]))
    for j in range(8):
        f = res.is_anomaly[:, j]
        assert not f[2000:].any(), (j, np.flatnonzero(f))
        assert f.sum() <= 2 * RECUR_ALARMS, (j, np.flatnonzero(f))
