"""Windowed scoring of anomaly alarms against labelled windows, after the public NAB scoring scheme. Pure.

Why windows: an incident is a stretch of time, not a point, and an operator cares about being told once,
early, and not being paged for nothing. The Numenta Anomaly Benchmark (Lavin & Ahmad 2015) turned that
into a score; this is our own implementation of its published description:

* Each labelled window (``[lo, hi]``, inclusive point indices) counts once. Its *first* alarm scores
  ``tp * σ̃(y) / σ̃(-1)`` with ``y = -(hi - i + 1) / width`` the alarm's relative position (-1 at the first
  point of the window, near 0 at its last) and ``σ̃(y) = 2 / (1 + e^{5y}) - 1`` the scaled sigmoid: an
  alarm at the start of the window earns the full ``tp``, one at its end almost nothing. Later alarms in
  the same window neither earn nor cost.
* A window without an alarm costs ``fn``.
* Every alarmed point outside the windows costs ``fp`` times ``|σ̃(y)|`` with ``y`` its distance past the
  end of the preceding window relative to that window's width: an alarm just after a window (the incident
  is still settling) costs little, one far from any window costs the full ``fp`` (``σ̃ = -1`` beyond three
  widths and before the first window).
* The first 15 % of a series (at most 750 points) is a probationary period in which alarms are not
  scored: every detector needs some history.

The raw score is summed over series and normalised as ``100 * (raw - null) / (perfect - null)``, with
``perfect`` = every window caught at its first point and no other alarm (``tp`` per window) and ``null`` = a
detector that never alarms (``-fn`` per window). So a perfect detector scores 100, a silent one 0, and a
noisy one can go far below 0. Three profiles weight the parts as NAB does: ``standard`` (fp 0.11),
``reward_low_FP`` (fp 0.22) and ``reward_low_FN`` (fn 2.0).

Alarm *episodes* (runs of alarms with gaps of at most ``gap`` points merged) are what a pager shows; they
are counted separately, e.g. per 1,000 points of series that have no anomaly at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PROFILES",
    "Profile",
    "SeriesScore",
    "SweepCurve",
    "alarm_episodes",
    "best_threshold",
    "normalise",
    "point_weights",
    "probation_length",
    "scaled_sigmoid",
    "score_alarms",
    "sweep_curve",
    "threshold_grid",
]


@dataclass(frozen=True)
class Profile:
    """Weights of a true positive (a window caught at its start), a false-positive point and a missed window."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP": Profile("reward_low_FP", tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN": Profile("reward_low_FN", tp=1.0, fp=0.11, fn=2.0),
}

_PROBATION_SHARE = 0.15
_PROBATION_CAP_POINTS = 5000


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """``2 / (1 + exp(5y)) - 1`` in (-1, 1), decreasing; exactly -1 for ``y > 3`` (far past a window)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, val)


_MAX_TP = float(scaled_sigmoid(-1.0))


def probation_length(n: int) -> int:
    """Points at the start of a series whose alarms are not scored: 15 % of it, at most 750."""
    return int(min(math.floor(_PROBATION_SHARE * n), _PROBATION_SHARE * _PROBATION_CAP_POINTS))


def _check_windows(windows: Sequence[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    out = sorted((int(lo), int(hi)) for lo, hi in windows)
    for k, (lo, hi) in enumerate(out):
        if not 0 <= lo <= hi < n:
            raise ValueError(f"window [{lo}, {hi}] is not inside a series of {n} points")
        if k and lo <= out[k - 1][1]:
            raise ValueError(f"windows {out[k - 1]} and {(lo, hi)} overlap")
    return out


def point_weights(n: int, windows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the window it belongs to (-1 outside every window) and its unweighted score.

    Inside window k the score is the true-positive credit ``σ̃(y) / σ̃(-1)`` in (0, 1]; outside it is the
    false-positive cost in [-1, 0) (multiply by the profile's ``tp`` / ``fp``). Probationary points outside
    windows get 0: their alarms are not scored.
    """
    wins = _check_windows(windows, n)
    idx = np.arange(n)
    window_of = np.full(n, -1, dtype=np.int64)
    weight = np.full(n, -1.0)  # before the first window: the full cost
    for k, (lo, hi) in enumerate(wins):
        width = hi - lo + 1
        inside = idx[lo : hi + 1]
        window_of[lo : hi + 1] = k
        weight[lo : hi + 1] = scaled_sigmoid(-(hi - inside + 1) / width) / _MAX_TP
        nxt = wins[k + 1][0] if k + 1 < len(wins) else n
        after = idx[hi + 1 : nxt]
        weight[hi + 1 : nxt] = scaled_sigmoid((after - hi) / max(width - 1, 1))
    probation = probation_length(n)
    weight[:probation] = np.where(window_of[:probation] >= 0, weight[:probation], 0.0)
    return window_of, weight


@dataclass(frozen=True)
class SeriesScore:
    """One series' alarms against its windows, under one profile."""

    raw: float
    n_windows: int
    detected: tuple[int | None, ...]
    """Per window (in time order): the index of its first alarm, or None when missed."""
    credit: tuple[float, ...]
    """Per window: the unweighted true-positive credit of its first alarm (0 when missed)."""
    false_alarm_points: int
    """Alarmed points outside every window, after the probationary period."""
    fp_cost: float
    """Their summed (weighted, negative) cost."""
    episodes: int
    """Alarm episodes after the probationary period (all of them, inside windows or not)."""
    scored_points: int
    """Points after the probationary period."""


def alarm_episodes(alarms: np.ndarray, gap: int = 10) -> int:
    """Runs of alarms, two alarms at most ``gap`` points apart belonging to the same run."""
    idx = np.flatnonzero(np.asarray(alarms, dtype=bool))
    if idx.size == 0:
        return 0
    return 1 + int(np.count_nonzero(np.diff(idx) > gap))


def score_alarms(
    alarms: np.ndarray,
    windows: Sequence[tuple[int, int]],
    profile: Profile = PROFILES["standard"],
    episode_gap: int = 10,
) -> SeriesScore:
    """NAB raw score of boolean ``alarms`` (one per point) against inclusive index ``windows``."""
    a = np.asarray(alarms, dtype=bool)
    n = a.size
    window_of, weight = point_weights(n, windows)
    wins = _check_windows(windows, n)
    detected: list[int | None] = []
    credit: list[float] = []
    raw = 0.0
    for lo, hi in wins:
        hits = np.flatnonzero(a[lo : hi + 1])
        if hits.size:
            detected.append(lo + int(hits[0]))
            credit.append(float(weight[lo + hits[0]]))
            raw += profile.tp * credit[-1]
        else:
            detected.append(None)
            credit.append(0.0)
            raw -= profile.fn
    outside = a & (window_of < 0)
    outside[: probation_length(n)] = False
    fp_cost = profile.fp * float(weight[outside].sum())
    probation = probation_length(n)
    return SeriesScore(
        raw=raw + fp_cost,
        n_windows=len(wins),
        detected=tuple(detected),
        credit=tuple(credit),
        false_alarm_points=int(outside.sum()),
        fp_cost=fp_cost,
        episodes=alarm_episodes(a[probation:], episode_gap),
        scored_points=n - probation,
    )


def normalise(raw: float, n_windows: int, profile: Profile) -> float:
    """``100 * (raw - null) / (perfect - null)``; NaN when there is no window (nothing to normalise by)."""
    perfect, null = profile.tp * n_windows, -profile.fn * n_windows
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True)
class SweepCurve:
    """Unweighted parts of one series' raw score at every threshold of a grid (alarm = score >= threshold).

    Kept unweighted so one curve serves every profile: ``raw = tp * tp_credit + fp * fp_cost - fn * missed``.
    """

    thresholds: np.ndarray
    tp_credit: np.ndarray
    fp_cost: np.ndarray
    missed: np.ndarray
    n_windows: int

    def raw(self, profile: Profile) -> np.ndarray:
        return profile.tp * self.tp_credit + profile.fp * self.fp_cost - profile.fn * self.missed


def sweep_curve(scores: np.ndarray, windows: Sequence[tuple[int, int]], thresholds: np.ndarray) -> SweepCurve:
    """Score the alarms ``scores >= t`` for every ``t`` in ``thresholds`` at once.

    Per window the first alarm at threshold t is the first point whose running maximum of the score
    reaches t; the false-positive cost at t is a cumulative sum over the outside points sorted by score.
    """
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    t = np.asarray(thresholds, dtype=np.float64)
    n = s.size
    window_of, weight = point_weights(n, windows)
    wins = _check_windows(windows, n)
    tp_credit = np.zeros(t.size)
    missed = np.zeros(t.size)
    for lo, hi in wins:
        run_max = np.maximum.accumulate(s[lo : hi + 1])
        first = np.searchsorted(run_max, t, side="left")
        hit = first < run_max.size
        tp_credit += np.where(hit, weight[lo : hi + 1][np.minimum(first, run_max.size - 1)], 0.0)
        missed += ~hit
    out = window_of < 0
    order = np.argsort(s[out], kind="stable")
    s_sorted = s[out][order]
    cost_desc = np.concatenate([[0.0], np.cumsum(weight[out][order][::-1])])
    n_at_or_above = s_sorted.size - np.searchsorted(s_sorted, t, side="left")
    return SweepCurve(t, tp_credit, cost_desc[n_at_or_above], missed, len(wins))


def threshold_grid(pooled_scores: np.ndarray, extra: Sequence[float] = (), size: int = 200) -> np.ndarray:
    """Candidate thresholds: upper-tail quantiles of the pooled scores (alarms are rare), plus ``extra``,
    plus one above the maximum (never alarm)."""
    s = np.asarray(pooled_scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return np.asarray(sorted(set(extra)) or [1.0])
    levels = 1.0 - np.logspace(-6, math.log10(0.5), size)
    grid = np.quantile(s, levels)
    top = float(s.max())
    beyond = top + max(abs(top), 1.0) * 1e-9
    return np.unique(np.concatenate([grid, np.asarray(list(extra), dtype=np.float64), [beyond]]))


def best_threshold(curves: Sequence[SweepCurve], profile: Profile) -> tuple[float, float]:
    """The one threshold, shared by every series, that maximises the normalised corpus score: (t, score)."""
    if not curves:
        raise ValueError("no series to sweep")
    if any(not np.array_equal(c.thresholds, curves[0].thresholds) for c in curves):
        raise ValueError("every series must be swept over the same thresholds")
    raw = np.sum([c.raw(profile) for c in curves], axis=0)
    n_windows = sum(c.n_windows for c in curves)
    k = int(np.argmax(raw))
    return float(curves[0].thresholds[k]), normalise(float(raw[k]), n_windows, profile)
