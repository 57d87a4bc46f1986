"""Season length per series, found causally from the autocorrelation-like difference function.

Shared by the anomaly detectors: a season is decided at checkpoints (128, 256, 512, ... points) from the
prefix seen so far only, so a point's forecast never depends on later data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft
import scipy.ndimage

__all__ = ["checkpoints", "detect_periods"]

_MAD_TO_SD = 1.4826
_CHECKPOINT_START = 128
_ACF_POINTS = 1024


def _by_column(reduce: Callable[..., np.ndarray], a: np.ndarray) -> np.ndarray:
    """``reduce`` (np.mean, np.std, np.var) of each column of ``a``, taken as a row of its own: numpy rounds
    a row the same whatever the number of rows, a column of a wide array not as a column alone, and a last
    bit can tip the choice of a season. A series' season must not depend on the series batched with it
    (the products with the time axis and the autocorrelation are taken column by column for the same reason)."""
    return reduce(np.ascontiguousarray(a.T), axis=1)


def _autocorr(spec: np.ndarray, nfft: int) -> np.ndarray:
    """Inverse FFT of the power of one column's spectrum (nfft x 1). One column at a time: numpy's complex
    products and inverse FFT round an element differently by where it falls in a wider array."""
    one = np.ascontiguousarray(spec)
    return np.fft.irfft(one * np.conj(one), n=nfft, axis=0)


def _periodicity(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best season length of each column of ``y`` (n x s, no NaN) and its strength in [0, 1] (0, 0: none).

    Uses the squared-difference function r(L) = 1 - mean((y_t - y_{t-L})^2) / (2 var) (as in the YIN pitch
    detector), which peaks exactly at the period even with only 2-3 cycles in view, unlike the plain
    autocorrelation. Values are clipped to median +- 4 MAD and linearly detrended; r must first drop below
    zero within half the candidate period (a persistent, random-walk-like series is not seasonal); the
    best peak must reach 0.25; the first local peak within 90 % of the best wins (P, not 2P), unless a
    multiple of it (up to 7P: a week of days) leaves at most 70 % of P's unexplained variance; at least
    2.5 cycles of the chosen season must be in view.
    """
    n, s = y.shape
    per = np.zeros(s, dtype=np.int64)
    strength = np.zeros(s)
    max_lag = int(n / 2.5)
    if n < 16 or max_lag < 4:
        return per, strength
    med = np.median(y, axis=0)
    mad = _MAD_TO_SD * np.median(np.abs(y - med), axis=0)
    sd = np.where(mad > 0, mad, _by_column(np.std, y))
    ok = sd > 0
    if not ok.any():
        return per, strength
    yc = np.clip(y[:, ok], (med - 4 * sd)[ok], (med + 4 * sd)[ok])
    tc = np.arange(n, dtype=np.float64) - (n - 1) / 2
    yc = yc - _by_column(np.mean, yc)
    slope = np.array([tc @ np.ascontiguousarray(yc[:, j : j + 1]) for j in range(yc.shape[1])]).reshape(-1)
    resid = yc - np.outer(tc, slope / (tc @ tc))
    nfft = int(scipy.fft.next_fast_len(n + max_lag + 1, real=True))
    spec = np.fft.rfft(resid, n=nfft, axis=0)
    cross = np.hstack([_autocorr(spec[:, j : j + 1], nfft) for j in range(spec.shape[1])])[: max_lag + 1]
    energy = np.vstack([np.zeros((1, resid.shape[1])), np.cumsum(resid**2, axis=0)])
    lags = np.arange(max_lag + 1)
    diff = (energy[n] - energy[lags] + energy[n - lags] - 2 * cross) / (n - lags)[:, None]
    var = _by_column(np.var, resid)
    good = var > 0
    r = 1 - diff / (2 * np.where(good, var, 1.0))
    neg = r < 0
    start = np.maximum(np.argmax(neg, axis=0), 2)
    usable = neg.any(axis=0) & good
    masked = np.where(lags[:, None] >= start[None, :], r, -np.inf)
    best_lag = np.argmax(masked, axis=0)
    best = masked[best_lag, np.arange(r.shape[1])]
    # A season crosses zero within half a period of lag 0; a random walk drifts below zero only late.
    found = usable & (best >= 0.25) & (2 * start <= best_lag + 2)
    # The period is the first lag that scores within 90 % of the best and is the highest point of its
    # own neighbourhood (+- L/8), so neither a multiple 2P nor a noisy shoulder of the peak wins.
    neigh = np.full(r.shape, -np.inf)
    width = np.maximum(lags // 8, 1)
    for w in np.unique(2 ** np.floor(np.log2(width)).astype(np.int64)):
        rows_w = np.flatnonzero(2 ** np.floor(np.log2(width)).astype(np.int64) == w)
        rolled = scipy.ndimage.maximum_filter1d(r, size=2 * int(w) + 1, axis=0, mode="nearest")
        neigh[rows_w] = rolled[rows_w]
    cand = (r >= 0.9 * best[None, :]) & (r >= neigh) & (lags[:, None] >= start[None, :])
    first = np.argmax(cand, axis=0)
    cols = np.flatnonzero(found & cand.any(axis=0))
    out_p = np.zeros(r.shape[1], dtype=np.int64)
    out_s = np.zeros(r.shape[1])
    for j in cols:
        chosen = int(first[j])
        # Refine on the harmonics too: mean r at L, 2L, 3L... is far sharper than r at L alone.
        near = np.arange(max(int(chosen * 0.95), 2), min(int(chosen * 1.05) + 2, max_lag + 1))
        mult = np.arange(1, max(1, max_lag // max(chosen, 1)) + 1)
        idx = near[:, None] * mult[None, :]
        inside = idx <= max_lag
        score = np.where(inside, r[np.minimum(idx, max_lag), j], 0.0).sum(axis=1) / np.maximum(
            inside.sum(axis=1), 1
        )
        chosen = int(near[int(np.argmax(score))])
        # A longer season made of whole shorter ones (a week of days) wins when it explains clearly more:
        # its unexplained share 1 - r at most 70 % of the short season's (weekends differ from weekdays).
        longer = [m * chosen for m in range(2, 8) if m * chosen <= max_lag]
        if longer:
            spots = [int(np.argmax(r[int(L * 0.98) : int(L * 1.02) + 2, j])) + int(L * 0.98) for L in longer]
            best_long = max(spots, key=lambda L: r[L, j])
            if 1 - r[best_long, j] <= 0.7 * (1 - r[chosen, j]):
                chosen = best_long
        out_p[j], out_s[j] = chosen, r[chosen, j]
    per[np.flatnonzero(ok)] = out_p
    strength[np.flatnonzero(ok)] = out_s
    return per, strength


def _periods_and_strength(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, s = y.shape
    if n > 2 * _ACF_POINTS:
        # Long prefixes: block-average to ~_ACF_POINTS points for long seasons (known to within a block,
        # finer than a seasonal bin), and look at the recent 2 x _ACF_POINTS raw points for short ones.
        f = n // _ACF_POINTS
        m = (n // f) * f
        blocks = np.ascontiguousarray(y[n - m :].T).reshape(s, m // f, f).mean(axis=2).T
        p_dec, s_dec = _periods_and_strength(np.ascontiguousarray(blocks))
        p_raw, s_raw = _periodicity(y[n - 2 * _ACF_POINTS :])
        raw = (p_raw > 0) & (s_raw >= 0.9 * s_dec)
        return np.where(raw, p_raw, p_dec * f), np.where(raw, s_raw, s_dec)
    per, strength = _periodicity(y)
    weak = np.flatnonzero(strength < 0.5)
    if weak.size:
        # An old level shift can hide a season in the whole prefix: also try its recent half.
        p_half, s_half = _periodicity(y[n // 2 :, weak])
        take = s_half > strength[weak]
        per[weak] = np.where(take, p_half, per[weak])
        strength[weak] = np.maximum(strength[weak], s_half)
    return per, strength


def detect_periods(y: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
    """Season length per column of ``y`` (n x s, no NaN), 0 for none; a ``current`` period within 3 % of
    the new estimate is kept, so a checkpoint does not reset a working season for a rounding change."""
    per, strength = _periods_and_strength(y)
    per = np.where(strength > 0, per, 0)
    if current is not None:
        same = (current >= 2) & (per > 0) & (np.abs(per - current) <= 0.03 * current + 1)
        per = np.where(same, current, per)
    return per


def checkpoints(n_max: int) -> list[int]:
    cps, c = [], _CHECKPOINT_START
    while c <= n_max:
        cps.append(c)
        c *= 2
    return cps
