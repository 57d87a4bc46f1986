"""A series' anomaly scores do not depend on which series share its batch.

The pipeline scores one metric's series as one (time x series) batch (:func:`.detector.score_batch`, via
:func:`.detector.detect_anomalies`), the CLI and the corpus evaluation one series at a time. Both must give
a series the same scores: here eight varied series (level shifts and season changes at different rows,
seasonal, zero-inflated, a random walk, different lengths) are scored alone, together, and together in
another order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from autopilot_pipeline.aiops.detector import DetectorConfig, detect_anomalies, score_batch
from autopilot_pipeline.aiops.detector_season import _periods_and_strength

TOL = 1e-9


def _series() -> list[np.ndarray]:
    rng = np.random.default_rng(20261205)
    out = []
    i = np.arange(5000)
    # Daily season (288 samples a day) with a dip late on.
    x = 100 + 30 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 2, i.size)
    x[4100:4130] -= 40
    out.append(x)
    # Flat noise with two level shifts at rows of its own.
    i = np.arange(4200)
    out.append(50 + rng.normal(0, 1, i.size) + np.where(i >= 1500, 12, 0) + np.where(i >= 3300, -20, 0))
    # Zero-inflated bursty counter.
    i = np.arange(3600)
    out.append(np.where(rng.random(i.size) < 0.06, rng.geometric(0.04, i.size), 0).astype(float))
    # Noise-free square wave whose period changes (a new regime for the season detector).
    i = np.arange(4600)
    out.append(np.where(i < 1800, np.where(i % 100 < 50, 5.0, 80.0), np.where(i % 60 < 30, 5.0, 80.0)))
    # Random walk.
    out.append(200 + np.cumsum(rng.normal(0, 1, 2500)))
    # Season that appears only after a while, then a spike.
    i = np.arange(3900)
    x = 10 + rng.normal(0, 0.5, i.size) + np.where(i > 900, 6 * np.sin(2 * np.pi * i / 48), 0)
    x[3000] += 15
    out.append(x)
    # Slow growth with benign heavy-tailed spikes (a longer series than the rest).
    i = np.arange(6000)
    x = 100 + 0.01 * i + rng.standard_t(3, i.size)
    out.append(x)
    # A short series (just past the first season checkpoint).
    out.append(7 + rng.normal(0, 1, 260) + np.where(np.arange(260) >= 200, 5, 0))
    return out


def _pack(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([s.size for s in series])
    x = np.full((int(lengths.max()), len(series)), np.nan)
    for j, s in enumerate(series):
        x[: s.size, j] = s
    return x, lengths


@pytest.fixture(scope="module")
def alone() -> list:
    return [score_batch(s[:, None], lengths=np.array([s.size])) for s in _series()]


def _assert_same(batch, j: int, single, n: int) -> None:
    np.testing.assert_allclose(batch.score[:n, j], single.score[:n, 0], rtol=0, atol=TOL)
    np.testing.assert_allclose(batch.p[:n, j], single.p[:n, 0], rtol=0, atol=TOL)
    np.testing.assert_array_equal(batch.is_anomaly[:n, j], single.is_anomaly[:n, 0])
    np.testing.assert_array_equal(batch.alarm[:n, j], single.alarm[:n, 0])
    np.testing.assert_allclose(batch.expected[:n, j], single.expected[:n, 0], rtol=0, atol=TOL)
    assert batch.period[j] == single.period[0]


def test_the_series_are_varied(alone) -> None:
    """The check below cannot pass vacuously: the series alarm, find seasons and change regime."""
    assert sum(int(r.is_anomaly.sum()) > 0 for r in alone) >= 3
    assert sum(int(r.period[0]) > 0 for r in alone) >= 2


@pytest.mark.parametrize("order", ["given", "reversed", "shuffled"])
def test_batch_scores_equal_single_series_scores(alone, order: str) -> None:
    series = _series()
    perm = np.arange(len(series))
    if order == "reversed":
        perm = perm[::-1]
    elif order == "shuffled":
        perm = np.random.default_rng(3).permutation(perm)
    x, lengths = _pack([series[k] for k in perm])
    batch = score_batch(x, lengths=lengths)
    for j, k in enumerate(perm):
        _assert_same(batch, j, alone[k], series[k].size)


def test_a_pair_equals_the_series_alone(alone) -> None:
    """Two series only (one with season changes, one with level shifts): fewer neighbours, same scores."""
    series = _series()
    x, lengths = _pack([series[3], series[1]])
    batch = score_batch(x, lengths=lengths)
    _assert_same(batch, 0, alone[3], series[3].size)
    _assert_same(batch, 1, alone[1], series[1].size)


def test_an_infinite_value_inside_one_series_leaves_it_as_alone() -> None:
    """A broken sample (inf -> missing) inside a series: its row holds other series' points in a batch,
    none when alone; the series' state must carry over that row the same way in both."""
    series = _series()
    s = series[1].copy()
    s[1499:1502] = np.inf  # just before its level shift, so the shift's run counter spans the gap
    series[1] = s
    x, lengths = _pack(series)
    batch = score_batch(x, lengths=lengths)
    single = score_batch(s[:, None], lengths=np.array([s.size]))
    _assert_same(batch, 1, single, s.size)


def test_detect_anomalies_scores_a_component_as_alone() -> None:
    """The pipeline's entry (one batch per metric): a component's rows are the same whatever other
    components of the metric are in the frame."""
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    frames = []
    for j, s in enumerate(_series()[:6]):
        ts = [t0 + timedelta(minutes=5 * k) for k in range(s.size)]
        frames.append(
            pl.DataFrame({"component": f"c{j}", "metric": "custom_x", "bucket_start": ts, "value": s})
        )
    together = detect_anomalies(pl.concat(frames), only_anomalies=False)
    assert together["isAnomaly"].sum() > 0
    for j, f in enumerate(frames):
        one = detect_anomalies(f, only_anomalies=False)
        mine = together.filter(pl.col("component") == f"c{j}")
        assert mine.height == one.height
        np.testing.assert_allclose(mine["anomaly_score"], one["anomaly_score"], rtol=0, atol=TOL)
        assert mine["isAnomaly"].to_list() == one["isAnomaly"].to_list()
        assert mine["alarm"].to_list() == one["alarm"].to_list()


def test_config_period_is_per_series_too(alone) -> None:
    """A fixed season (``period``) for the whole batch: still no coupling between the series."""
    series = _series()[:4]
    cfg = DetectorConfig(period=100)
    x, lengths = _pack(series)
    batch = score_batch(x, lengths=lengths, config=cfg)
    for j, s in enumerate(series):
        _assert_same(batch, j, score_batch(s[:, None], lengths=np.array([s.size]), config=cfg), s.size)


@pytest.mark.parametrize("n", [700, 3000])
def test_season_detection_rounds_each_column_as_alone(n: int) -> None:
    """The season detector's strengths (continuous, so a last-bit difference shows) are the same for a
    column alone and inside a wide array: a last bit can tip the choice of a season. Before, its column
    sums, BLAS products, complex products and inverse FFTs rounded with the array's width (128 of 200
    random columns differed)."""
    rng = np.random.default_rng(n)
    i = np.arange(n)
    cols = [
        rng.uniform(-50, 50)
        + rng.uniform(0, 30) * np.sin(2 * np.pi * i / int(rng.integers(10, 300)))
        + rng.normal(0, rng.uniform(0.1, 20), n)
        for _ in range(24)
    ]
    y = np.column_stack(cols)
    per, strength = _periods_and_strength(y)
    assert (per > 0).sum() >= 12
    for j in range(y.shape[1]):
        p1, s1 = _periods_and_strength(y[:, j : j + 1].copy())
        assert (p1[0], s1[0]) == (per[j], strength[j])
