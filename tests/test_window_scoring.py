"""The NAB-style windowed scorer on small hand-computed cases.

The scaled sigmoid 2 / (1 + e^{5y}) - 1 equals tanh(-5y / 2); the expected values below are written with
tanh, independently of the implementation. A 1,000-point series has a 150-point probationary period.
"""

import math

import numpy as np
import pytest

from autopilot_pipeline.aiops.window_scoring import (
    PROFILES,
    alarm_episodes,
    best_threshold,
    normalise,
    probation_length,
    score_alarms,
    sweep_curve,
    threshold_grid,
)

N = 1000
WINDOW = (500, 599)  # 100 points
STD, LOW_FP, LOW_FN = PROFILES["standard"], PROFILES["reward_low_FP"], PROFILES["reward_low_FN"]
MAX_TP = math.tanh(2.5)


def alarms_at(*idx: int, n: int = N) -> np.ndarray:
    a = np.zeros(n, dtype=bool)
    a[list(idx)] = True
    return a


def score(alarms: np.ndarray, windows=(WINDOW,), profile=STD) -> float:
    s = score_alarms(alarms, windows, profile)
    return normalise(s.raw, s.n_windows, profile)


def test_profiles_carry_nab_weights():
    assert (STD.tp, STD.fp, STD.fn) == (1.0, 0.11, 1.0)
    assert (LOW_FP.tp, LOW_FP.fp, LOW_FP.fn) == (1.0, 0.22, 1.0)
    assert (LOW_FN.tp, LOW_FN.fp, LOW_FN.fn) == (1.0, 0.11, 2.0)


def test_probation_is_15_percent_capped_at_750_points():
    assert probation_length(1000) == 150
    assert probation_length(20_000) == 750


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_perfect_detector_scores_100_and_silent_detector_0(profile):
    assert score(alarms_at(500), profile=profile) == pytest.approx(100.0)
    assert score(np.zeros(N, dtype=bool), profile=profile) == pytest.approx(0.0)


def test_only_the_first_alarm_in_a_window_counts():
    assert score(alarms_at(500, 520, 599)) == pytest.approx(100.0)
    s = score_alarms(alarms_at(550, 560), [WINDOW])
    assert s.detected == (550,) and s.false_alarm_points == 0


def test_late_detection_scores_less_by_the_scaled_sigmoid():
    middle = math.tanh(2.5 * 0.5) / MAX_TP  # y = -(599 - 550 + 1) / 100 = -0.5
    last = math.tanh(2.5 * 0.01) / MAX_TP  # y = -1 / 100
    assert score(alarms_at(550)) == pytest.approx(100 * (middle + 1) / 2)
    assert score(alarms_at(599)) == pytest.approx(100 * (last + 1) / 2)
    assert 0 < score(alarms_at(599)) < score(alarms_at(550)) < 100


def test_one_false_positive_before_the_window_costs_the_full_fp_weight():
    a = alarms_at(300, 500)
    assert score(a, profile=STD) == pytest.approx(100 * (1 - 0.11 + 1) / 2)
    assert score(a, profile=LOW_FP) == pytest.approx(100 * (1 - 0.22 + 1) / 2)
    assert score(a, profile=LOW_FN) == pytest.approx(100 * (1 - 0.11 + 2) / 3)


def test_false_positive_after_a_window_costs_by_its_distance():
    near = math.tanh(-2.5 * (650 - 599) / 99)  # y = distance / (width - 1)
    assert score_alarms(alarms_at(500, 650), [WINDOW]).raw == pytest.approx(1 + 0.11 * near)
    assert score_alarms(alarms_at(500, 950), [WINDOW]).raw == pytest.approx(1 - 0.11)  # y > 3: full cost
    assert abs(near) < 1


def test_alarms_in_the_probationary_period_are_free():
    assert score(alarms_at(10, 100, 149, 500)) == pytest.approx(100.0)
    assert score(alarms_at(150, 500)) < 100.0


def test_a_missed_window_costs_fn_and_profiles_rank_detectors_as_expected():
    windows = [(300, 349), (700, 749)]
    noisy = alarms_at(300, 700, 200, 210, 220, 230, 240)  # both windows at once, 5 false alarms far from them
    missing = alarms_at(300)  # one window caught, one missed, nothing else
    assert score(noisy, windows, STD) == pytest.approx(100 * (2 - 5 * 0.11 + 2) / 4)
    assert score(noisy, windows, LOW_FP) == pytest.approx(100 * (2 - 5 * 0.22 + 2) / 4)
    assert score(missing, windows, STD) == pytest.approx(100 * (1 - 1 + 2) / 4)
    assert score(missing, windows, LOW_FN) == pytest.approx(100 * (1 - 2 + 4) / 6)
    assert score(noisy, windows, LOW_FP) < score(noisy, windows, STD) < score(noisy, windows, LOW_FN)

    def lead(profile):  # how far the complete-but-noisy detector ranks above the quiet one that misses
        return score(noisy, windows, profile) - score(missing, windows, profile)

    assert lead(LOW_FP) < lead(STD) < lead(LOW_FN)


def test_no_window_normalises_to_nan_but_false_alarms_still_cost():
    s = score_alarms(alarms_at(400, 401), [])
    assert s.raw == pytest.approx(-0.22) and s.false_alarm_points == 2
    assert math.isnan(normalise(s.raw, 0, STD))


def test_episodes_merge_alarms_within_the_gap():
    a = alarms_at(10, 11, 12, 30, 31, 100)
    assert alarm_episodes(a, gap=10) == 3
    assert alarm_episodes(a, gap=20) == 2
    assert alarm_episodes(np.zeros(5, dtype=bool)) == 0
    assert (
        score_alarms(alarms_at(100, 300, 301, 305), [WINDOW], episode_gap=10).episodes == 1
    )  # 100: probation


def test_bad_windows_are_rejected():
    with pytest.raises(ValueError, match="overlap"):
        score_alarms(alarms_at(1), [(200, 300), (300, 400)])
    with pytest.raises(ValueError, match="inside"):
        score_alarms(alarms_at(1), [(900, 1000)])


def test_threshold_sweep_matches_scoring_each_threshold_directly():
    rng = np.random.default_rng(7)
    windows = [(300, 359), (600, 659), (880, 939)]
    scores = rng.random(N) ** 8
    scores[620] = 0.99
    grid = threshold_grid(scores, extra=[0.5])
    curve = sweep_curve(scores, windows, grid)
    for profile in PROFILES.values():
        raw = curve.raw(profile)
        for k in range(0, grid.size, 17):
            assert raw[k] == pytest.approx(score_alarms(scores >= grid[k], windows, profile).raw)
    assert curve.raw(STD)[-1] == pytest.approx(-3.0)  # above the maximum: silent, three misses


def test_best_threshold_is_shared_by_the_corpus_and_finds_the_separating_one():
    first = np.zeros(N)
    first[[500, 520]] = [0.9, 0.95]
    first[300] = 0.7  # a false alarm, scored lower than both detections
    second = np.zeros(N)
    second[400] = 0.8  # this series' only alarm is false
    grid = threshold_grid(np.concatenate([first, second]))
    curves = [sweep_curve(first, [WINDOW], grid), sweep_curve(second, [], grid)]
    t, best = best_threshold(curves, STD)
    assert 0.8 < t <= 0.9  # catches the window at its start, above both false alarms
    assert best == pytest.approx(100.0)


def test_the_shipped_threshold_is_always_swept() -> None:
    """The best threshold is searched among quantiles of the scores plus the detector's own, so "best" can
    never report less than "own" just because the quantile grid stepped over the shipped value."""
    scores = np.random.default_rng(3).uniform(0.0, 1.0, 5000)
    grid = threshold_grid(scores, extra=(0.9999,))
    assert 0.9999 in grid and grid[-1] > scores.max()
