"""The recalibration map of the failure risk: raw path share (and the series' own past crossing rate) to the
stated risk. Pure (numpy, scipy).

Why this shape. The raw share of simulated paths that cross is over-confident, but not by one constant
factor on the log-odds (which a two-parameter Platt map assumes): on the calibration part of the failure
corpus, ``logit(observed)`` against ``logit(raw)`` has a slope near 0.5 in the middle, a steeper stretch
where the raw share passes 0.97 (the series already at or over its threshold) and flattens again at both
ends. So the map is a **monotone piecewise-linear function of the log-odds** (knots every 2 or 3 log-odds units,
every slope >= 0, so a higher raw share never gives a lower risk), fitted by maximum likelihood on the
logistic scale: Platt scaling with a few more degrees of freedom, smooth where isotonic regression has steps.

The second input is the **history's base rate**: the share of the history's 24-hour windows that crossed
the threshold, shrunk towards 1/2 by one day's weight (``(share m + 1/2) / (m + 1)`` for ``m`` days of
history). It is known at the origin and says what the path share cannot: how often this series reaches its
threshold at all (a series that crossed on 5 % of its days gets a lower risk than one that crossed on 50 %
for the same raw share). Its coefficient is fitted with the map and kept >= 0.

An optional third input is the forecast's **band growth** (:func:`band_growth`): for the same path share, a
series whose errors persist (its error band widens a lot over 24 hours) crossed more often on the corpora.
It is not in the shipped map: it raised the risk of young demo series (``risk_backtest.MAP_BAND_GROWTH``).

The knots and the inputs were chosen by cross-validation inside the calibration splits of three corpora
(5-fold by series and leave-one-corpus-out log loss; ``risk_backtest.MAP_KNOTS``, which the backtest fits;
``KNOTS`` below is only the default of :func:`fit_map`); see docs/AI_OPS_GUIDE.md, "Failure risk".
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy.optimize import minimize

__all__ = [
    "EPS",
    "KNOTS",
    "apply_map",
    "band_growth",
    "base_weight",
    "basis",
    "fit_map",
    "history_rate",
    "logit",
]

EPS = 1e-6
KNOTS: tuple[float, ...] = (-6.0, -3.0, 0.0, 3.0, 6.0)
RIDGE = 1e-3  # a whisper of L2 on the slopes: keeps a segment without data from taking any value


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def basis(x: np.ndarray, knots: tuple[float, ...]) -> np.ndarray:
    """Ramp basis of a continuous piecewise-linear function of ``x`` with these knots, shape (N, K + 1):
    column j is the part of ``x`` inside segment j, so each coefficient is that segment's slope. Without
    knots: ``x`` itself (Platt scaling)."""
    x = np.asarray(x, dtype=np.float64)
    if not knots:
        return x[:, None]
    k = np.asarray(knots, dtype=np.float64)
    cols = [np.minimum(x, k[0]) - k[0]]
    cols += [np.clip(x, a, b) - a for a, b in zip(k[:-1], k[1:], strict=True)]
    cols.append(np.maximum(x, k[-1]) - k[-1])
    return np.stack(cols, axis=1)


def history_rate(hit: np.ndarray, horizon: int = 24) -> float:
    """The history's base rate: the share of its complete ``horizon``-hour windows with a crossing, shrunk
    towards 1/2 with the weight of one day (``m`` = hours / horizon independent windows)."""
    hit = np.asarray(hit, dtype=bool)
    if hit.size >= horizon:
        share = float((np.convolve(hit.astype(np.float64), np.ones(horizon), mode="valid") > 0).mean())
    else:
        share = float(hit.any())
    m = hit.size / horizon
    return (share * m + 0.5) / (m + 1.0)


BASE_LOW, BASE_HIGH = 0.02, 0.5  # the base rates where the slopes are the "rare" and the "common" ones


def base_weight(base: np.ndarray | float) -> np.ndarray:
    """Where a history's base rate lies between a rare series (0.02 crossed windows: 0) and a common one
    (0.5: 1), linear in the log-odds and clipped. The weight of the "common" slopes in a map whose slopes
    depend on the base rate."""
    lo, hi = logit(BASE_LOW), logit(BASE_HIGH)
    return np.clip((logit(base) - lo) / (hi - lo), 0.0, 1.0)


def band_growth(quantiles: np.ndarray) -> np.ndarray:
    """How much the model's 95 % error band widens over the horizon: log(width at the last hour / width at
    the first), from the scaled-error quantiles (..., 4, H) of :meth:`risk.RiskForecast.z_quantiles`.

    Why it can be an input of the map: a series whose errors persist (a band that widens a lot) crossed more
    often than its path share said, in cross-validation across corpora (docs/AI_OPS_GUIDE.md)."""
    q = np.asarray(quantiles, dtype=np.float64)
    first = np.maximum(q[..., 3, 0] - q[..., 0, 0], 1e-9)
    last = np.maximum(q[..., 3, -1] - q[..., 0, -1], 1e-9)
    return np.log(last / first)


def _design(
    raw: np.ndarray,
    base: np.ndarray | None,
    knots: tuple[float, ...],
    by_base: bool = False,
    growth: np.ndarray | None = None,
) -> np.ndarray:
    x = basis(logit(raw), knots)
    if by_base:
        u = base_weight(base)[:, None]  # type: ignore[arg-type]
        x = np.concatenate([x * (1 - u), x * u], axis=1)
    if base is not None:
        x = np.concatenate([x, logit(base)[:, None]], axis=1)
    if growth is not None:
        x = np.concatenate([x, np.asarray(growth, dtype=np.float64)[:, None]], axis=1)
    return x


def fit_map(
    raw: np.ndarray,
    event: np.ndarray,
    base: np.ndarray | None = None,
    knots: tuple[float, ...] = KNOTS,
    *,
    by_base: bool = False,
    growth: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float] | tuple[np.ndarray, float, float, float]:
    """(slopes, intercept, base coefficient) maximising the likelihood of ``event`` under
    ``sigmoid(intercept + sum_j slope_j basis_j(logit raw) + coef logit base)``, slopes and coef >= 0.
    ``base`` None: no base-rate term (coefficient 0).

    ``by_base``: every slope depends on the base rate, ``(1 - u) rare_j + u common_j`` with ``u`` =
    :func:`base_weight` (both sets >= 0, so still monotone in the raw risk); the slopes returned are then
    the rare ones followed by the common ones (2 (K + 1) values).

    ``growth`` (:func:`band_growth`, needs ``base``): one more input with a free coefficient, returned as a
    fourth value.

    ``weight``: (N,) non-negative weights of the forecasts in the likelihood (None: all 1), e.g. so that
    each of several pooled corpora counts equally; scaled to sum to N, so the ridge keeps its strength."""
    raw = np.asarray(raw, dtype=np.float64)
    ev = np.asarray(event, dtype=np.float64)
    if raw.size == 0 or raw.size != ev.size:
        raise ValueError("the calibration needs as many events as raw risks, and at least one")
    wt = np.ones(raw.size) if weight is None else np.asarray(weight, dtype=np.float64)
    if wt.shape != raw.shape or not np.all(wt >= 0) or not wt.sum() > 0:
        raise ValueError("the calibration weights need one non-negative value per forecast, not all 0")
    wt = wt * (raw.size / wt.sum())
    if (by_base or growth is not None) and base is None:
        raise ValueError("a map with slopes by base rate or a band-growth input needs the base rates")
    x = _design(raw, None if base is None else np.asarray(base, dtype=np.float64), knots, by_base, growth)
    x = np.concatenate([x, np.ones((raw.size, 1))], axis=1)
    p = x.shape[1]
    free = 2 if growth is not None else 1  # the intercept and the growth coefficient take either sign

    def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        pen = RIDGE * float(np.sum(w[:-1] ** 2))
        grad = x.T @ (wt * (special.expit(z) - ev))
        grad[:-1] += 2 * RIDGE * w[:-1]
        return float(np.sum(wt * (np.logaddexp(0.0, z) - ev * z))) + pen, grad

    w0 = np.full(p, 0.5)
    w0[-free:] = 0.0
    bounds = [(0.0, None)] * (p - free) + [(None, None)] * free
    w = minimize(nll, w0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000}).x
    n_slopes = (len(knots) + 1 if knots else 1) * (2 if by_base else 1)
    coef = float(w[n_slopes]) if base is not None else 0.0
    if growth is not None:
        return w[:n_slopes].copy(), float(w[-1]), coef, float(w[-2])
    return w[:n_slopes].copy(), float(w[-1]), coef


def apply_map(
    raw: np.ndarray | float,
    base: np.ndarray | float | None,
    knots: tuple[float, ...],
    slopes: np.ndarray,
    intercept: float,
    base_coef: float,
    growth: np.ndarray | float | None = None,
    growth_coef: float = 0.0,
) -> np.ndarray:
    """The stated risk of raw risks ``raw`` (and history base rates ``base``) under a fitted map."""
    r = np.atleast_1d(np.asarray(raw, dtype=np.float64))
    slopes = np.asarray(slopes, dtype=np.float64)
    x = basis(logit(r), knots)
    by_base = slopes.size == 2 * x.shape[1]
    if (base_coef or by_base) and base is None:
        raise ValueError("this calibration needs the history's base rate (risk_map.history_rate)")
    b = None if base is None else np.broadcast_to(np.asarray(base, dtype=np.float64), r.shape)
    if by_base:
        u = base_weight(b)[:, None]  # type: ignore[arg-type]
        x = np.concatenate([x * (1 - u), x * u], axis=1)
    z = x @ slopes + intercept
    if base_coef:
        z = z + base_coef * logit(b)  # type: ignore[arg-type]
    if growth_coef:
        if growth is None:
            raise ValueError("this calibration needs the forecast's band growth (risk_map.band_growth)")
        z = z + growth_coef * np.broadcast_to(np.asarray(growth, dtype=np.float64), r.shape)
    return special.expit(z)
