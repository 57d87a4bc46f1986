"""The detector on behaviours where a recurring event must not look new (issue 14: floods on real data).

Each behaviour has a normal variant that raises no alarm after learning and an abnormal one caught inside
its window. Seeded series generated here; the detector's shipped threshold, never adjusted."""

from __future__ import annotations

import numpy as np
import pytest

from autopilot_pipeline.aiops.detector import score_batch

N = 8000
ONSET, WINDOW = 6000, 400
LEARN = 2000


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def counter_with_finer_counts(seed: int) -> np.ndarray:
    """Disk writes: mostly 0, bursts in multiples of 5 blocks at first, any count later (a driver update).
    The smallest step seen shrinks from 5 to 1 at half way: a stretch of zeros is then no flatter than
    before, and must not be called a stuck metric."""
    rng = _rng(seed)
    size = rng.geometric(0.02, N).astype(float)
    size[: N // 2] = 5 * np.ceil(size[: N // 2] / 5)
    return np.where(rng.random(N) < 0.05, size, 0.0)


def noisy_sawtooth(seed: int) -> np.ndarray:
    """Fill and flush with a noisy fill rate: the flush comes every 150-250 points, never on a fixed beat,
    so a seasonal forecast places it wrong now and then; a flush is still normal."""
    rng = _rng(seed)
    x, out = 20.0, np.empty(N)
    for i in range(N):
        x += max(0.25 * (1 + rng.normal(0, 0.5)), 0.0)
        if x >= 70:
            x = 20 + abs(rng.normal(0, 1))
        out[i] = x
    return np.round(out, 3)


def batch_job(seed: int) -> np.ndarray:
    """A nightly job at 5-minute samples: 0, then 300 for two hours every day."""
    return np.where(np.arange(N) % 288 < 24, 300.0, 0.0)


def stationary(seed: int) -> np.ndarray:
    return 40 + _rng(seed).normal(0, 2, N)


def _burst(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[ONSET] = 10 * x[:ONSET].max()
    return y


def _no_flush(x: np.ndarray) -> np.ndarray:
    y = x.copy()  # the flush fails: the fill goes on past the trigger level
    y[ONSET:] = y[ONSET] + 0.25 * np.arange(N - ONSET)
    return y


def _missed_run(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    start = ONSET + (-ONSET) % 288  # the next night's run does not happen
    y[start : start + 24] = 0.0
    return y


def _spike(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[ONSET] += 20
    return y


CASES = {
    "counter_with_finer_counts": (counter_with_finer_counts, _burst, 0),
    "noisy_sawtooth": (noisy_sawtooth, _no_flush, 0),
    "batch_job": (batch_job, _missed_run, 288),
    "stationary": (stationary, _spike, 0),
}


@pytest.fixture(scope="module")
def flags() -> dict[str, np.ndarray]:
    names, cols = [], []
    for name, (normal, abnormal, _) in CASES.items():
        for seed in (1, 2):
            names.append(f"normal/{name}/{seed}")
            cols.append(normal(seed))
        names.append(f"abnormal/{name}")
        cols.append(abnormal(normal(3)))
    res = score_batch(np.column_stack(cols))
    return {n: res.is_anomaly[:, j] for j, n in enumerate(names)}


SAWTOOTH_GAP = pytest.mark.xfail(
    strict=True,
    reason="known weakness: a flush off the seasonal beat alarms for the first 3-6 cycles (until three of "
    "each direction are remembered; 5 allowed here), and a fill that is not flushed climbs at its usual pace "
    "unseen for 400 points (docs/AI_OPS_GUIDE.md, Detector)",
)
NAMES = [pytest.param(n, marks=SAWTOOTH_GAP) if n == "noisy_sawtooth" else n for n in CASES]
NORMAL = [n for n in NAMES if n != "counter_with_finer_counts"]


@pytest.mark.parametrize("name", NORMAL)
def test_normal_variant_raises_no_alarm_after_learning(flags, name: str) -> None:
    for seed in (1, 2):
        f = flags[f"normal/{name}/{seed}"]
        assert not f[LEARN:].any(), np.flatnonzero(f)
        assert f.sum() <= N / 2000 + 1, np.flatnonzero(f)


def test_counter_flat_stretches_are_not_stuck_after_its_counts_get_finer(flags) -> None:
    """A bursty counter: after its smallest step shrinks, stretches of zeros still raise no alarm, and
    over the whole series alarms stay within the false-alarm budget (its largest bursts are rare values,
    about one in 10,000 points, and may alarm)."""
    for seed in (1, 2):
        x = counter_with_finer_counts(seed)
        f = flags[f"normal/counter_with_finer_counts/{seed}"]
        assert not (f & (x == 0)).any(), np.flatnonzero(f & (x == 0))
        assert f[LEARN:].sum() <= N / 2000, np.flatnonzero(f)


@pytest.mark.parametrize("name", NAMES)
def test_abnormal_variant_caught_inside_its_window(flags, name: str) -> None:
    f = flags[f"abnormal/{name}"]
    lag = CASES[name][2]
    assert f[ONSET : ONSET + lag + WINDOW].any(), np.flatnonzero(f)
    assert not f[LEARN:ONSET].any(), np.flatnonzero(f)
