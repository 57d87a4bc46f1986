"""Which seasons an hourly series has: daily (24 h) and weekly (168 h), detected from its own history.

Why not assume them: a random walk or a leak forced into a 24-hour season gets a seasonal pattern fitted to
noise, and a daily+weekly load forecast with only a daily season misses every weekend. Detection uses the
autocorrelation function (``statsmodels.tsa.stattools.acf``, FFT) of the series minus a centred moving
average, which removes slow level changes without removing the cycle being tested:

* daily when the autocorrelation at lag 24 of ``y - MA_24(y)`` is at least ``min_acf`` (0.3) and at least
  that at lag 12 plus 0.1 (a cycle, not just persistence), with two full days of history;
* weekly when, on the series of daily means (whole days counted back from the last hour, which takes the
  daily cycle out), the same day one week earlier predicts clearly better than the day before:
  ``var(d[j] - d[j-7]) < 0.35 var(d[j] - d[j-1])`` (a week-to-week autocorrelation well above the
  day-to-day one), with at least two weeks and a day of history. Steady noise gives a ratio near 1, a
  wandering level one above 1; a weekday/weekend difference adds to the day-to-day changes only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DAY", "WEEK", "detect_seasons", "seasonal_acf", "weekly_ratio"]

DAY = 24
WEEK = 168
MIN_ACF = 0.3
WEEKLY_GAIN = 0.35


def _detrended(y: np.ndarray, window: int) -> np.ndarray:
    """``y`` minus its centred moving average over ``window`` points (ends: the nearest full window)."""
    kernel = np.ones(window) / window
    ma = np.convolve(y, kernel, mode="valid")
    pad_lo = (y.size - ma.size) // 2
    full = np.concatenate([np.full(pad_lo, ma[0]), ma, np.full(y.size - ma.size - pad_lo, ma[-1])])
    return y - full


def seasonal_acf(y: np.ndarray, window: int, lags: tuple[int, ...]) -> dict[int, float]:
    """Autocorrelations of ``y - MA_window(y)`` at ``lags`` (0.0 for a constant remainder)."""
    from statsmodels.tsa.stattools import acf

    x = _detrended(np.asarray(y, dtype=np.float64), window)
    if x.size <= max(lags) or not np.ptp(x) > 0:
        return dict.fromkeys(lags, 0.0)
    r = acf(x, nlags=max(lags), fft=True)
    return {lag: float(r[lag]) for lag in lags}


def weekly_ratio(y: np.ndarray) -> float:
    """``var(d[j] - d[j-7]) / var(d[j] - d[j-1])`` over the daily means ``d`` of ``y`` (inf: undefined)."""
    days = y.size // DAY
    d = y[y.size - days * DAY :].reshape(days, DAY).mean(axis=1)
    if d.size < 9:
        return float("inf")
    lag1 = float(np.mean(np.diff(d) ** 2))
    lag7 = float(np.mean((d[7:] - d[:-7]) ** 2))
    return lag7 / lag1 if lag1 > 0 else float("inf")


def detect_seasons(y: np.ndarray, *, min_acf: float = MIN_ACF) -> tuple[int, ...]:
    """The seasons of hourly ``y``: () , (24,), (168,) or (24, 168)."""
    y = np.asarray(y, dtype=np.float64)
    y = y[np.isfinite(y)]
    found: list[int] = []
    if y.size >= 2 * DAY + DAY // 2:
        d = seasonal_acf(y, DAY, (DAY // 2, DAY))
        if d[DAY] >= min_acf and d[DAY] >= d[DAY // 2] + 0.1:
            found.append(DAY)
    if y.size >= 2 * WEEK + DAY and weekly_ratio(y) < WEEKLY_GAIN:
        found.append(WEEK)
    return tuple(found)
