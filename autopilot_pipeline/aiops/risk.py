"""Failure risk over the next 24 hours from an empirical predictive distribution. Pure (numpy, statsmodels).

Why not the Gaussian ETS intervals: on held-out real series they were too narrow in the first hours and too
wide towards 24 h, and the crossing probability was over-confident at both ends. The model's own errors know
better how uncertainty grows with the horizon than a formula does, so they are used directly:

1. **Point forecast with the detected seasons** (:func:`seasons.detect_seasons`): no season, ETS(A,Ad,N);
   daily, ETS(A,Ad,A) with a 24-hour season; weekly (with or without daily), MSTL decomposition into its
   seasons, ETS(A,Ad,N) on the seasonally adjusted series and each seasonal component carried forward from
   its last cycle. statsmodels estimates the parameters; the states are re-run here so that...
2. **...the same model forecasts from every past hour t of the history** (the filter is causal: the state at
   t depends on data up to t only). The errors of those forecasts 1..24 hours ahead are whole *error
   trajectories*; each is divided by the local scale at its origin (mean absolute one-step error over the
   preceding ``SCALE_WINDOW`` hours). The predictive distribution at the origin is the forecast plus the
   current local scale times these trajectories: simulated paths with bootstrapped historical errors, so the
   spread at each horizon hour and the dependence between hours are the ones the model showed.
3. **Risk** = share of paths whose maximum (minimum for "below") crosses the threshold within the horizon (a
   path probability, not a per-hour marginal; kernel-smoothed over the path extremes), mapped through a
   monotone piecewise-linear recalibration of its log-odds that also weighs the history's own base rate
   (and, in a map fitted with it, how much the model's error band widens; not in the shipped one)
   (:mod:`aiops.risk_map`); the 80 % and 95 %
   intervals are per-hour quantiles of the paths, widened or narrowed by a per-hour factor. Both the map and
   the factors are fitted on the calibration parts of failure corpora and reported on their held-out parts
   (:mod:`aiops.risk_backtest`); the fitted values ship in ``risk_calibration.json``.

With fewer than ``MIN_TRAJECTORIES`` error trajectories (under 120 hours of history) the paths come from
the Gaussian ETS of ``core.forecast`` (method ``... Gaussian``), below 10 hours from a random walk
(``naive``): a trend towards the threshold must still raise the risk on a young series.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from scipy import special

from autopilot_pipeline.aiops import risk_map
from autopilot_pipeline.aiops.forecast import MIN_ETS, ForecastResult, fit_ets
from autopilot_pipeline.aiops.seasons import DAY, WEEK, detect_seasons

__all__ = [
    "CALIBRATION_FILE",
    "Assessment",
    "HORIZON",
    "Calibration",
    "RiskForecast",
    "assess",
    "crossed",
    "fit_calibration",
    "load_calibration",
    "risk_forecast",
]

Direction = Literal["above", "below"]

HORIZON = 24
BURN = 48  # first hours of the history: the filter's start-up, no error trajectories from there
SCALE_WINDOW = 96
MIN_TRAJECTORIES = 48
LEVELS = (0.8, 0.95)
EPS = 1e-6
CALIBRATION_FILE = Path(__file__).with_name("risk_calibration.json")


# ------------------------------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class Calibration:
    """Per-hour interval factors and the recalibration map from raw risk (and the history's base rate) to
    stated risk (:mod:`aiops.risk_map`: monotone piecewise-linear in the log-odds)."""

    widen_80: np.ndarray
    widen_95: np.ndarray
    knots: tuple[float, ...] = ()
    slopes: np.ndarray = field(default_factory=lambda: np.ones(1))  # identity map: risk = raw
    intercept: float = 0.0
    base_coef: float = 0.0  # weight of logit(history base rate); 0: not used
    fitted_on: str = "identity (not calibrated)"
    targets_met: bool = False
    growth_coef: float = 0.0  # weight of the forecast's band growth (risk_map.band_growth); 0: not used

    @classmethod
    def identity(cls, horizon: int = HORIZON) -> Calibration:
        return cls(np.ones(horizon), np.ones(horizon))

    def risk(
        self,
        raw: float | np.ndarray,
        base: float | np.ndarray | None = None,
        growth: float | np.ndarray | None = None,
    ) -> float | np.ndarray:
        """The calibrated risk of a raw risk (monotone in it); ``base``: the history's base rate
        (:func:`risk_map.history_rate`), ``growth``: the forecast's band growth
        (:func:`risk_map.band_growth`), each needed when the map uses it."""
        out = risk_map.apply_map(
            raw, base, self.knots, self.slopes, self.intercept, self.base_coef, growth, self.growth_coef
        )
        return float(out[0]) if np.ndim(raw) == 0 else out

    def widen(self, level: float, horizon: int) -> np.ndarray:
        w = self.widen_80 if level == 0.8 else self.widen_95
        if w.size >= horizon:
            return w[:horizon]
        return np.concatenate([w, np.full(horizon - w.size, w[-1])])

    def with_targets(self, met: bool) -> Calibration:
        return replace(self, targets_met=bool(met))

    def to_dict(self) -> dict:
        return {
            "fittedOn": self.fitted_on,
            "targetsMet": self.targets_met,
            "widen80": [round(float(v), 4) for v in self.widen_80],
            "widen95": [round(float(v), 4) for v in self.widen_95],
            "map": {
                "knots": [float(k) for k in self.knots],
                "slopes": [round(float(v), 6) for v in self.slopes],
                "intercept": round(float(self.intercept), 6),
                "baseRateCoef": round(float(self.base_coef), 6),
                "bandGrowthCoef": round(float(self.growth_coef), 6),
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """From :meth:`to_dict`'s shape; an older file with ``plattA``/``plattB`` is a map without knots."""
        if "map" in d:
            m = d["map"]
            knots = tuple(float(k) for k in m["knots"])
            slopes = np.asarray(m["slopes"], dtype=np.float64)
            intercept, coef = float(m["intercept"]), float(m.get("baseRateCoef", 0.0))
            growth = float(m.get("bandGrowthCoef", 0.0))
        else:
            knots, slopes, intercept, coef = (), np.array([float(d["plattA"])]), float(d["plattB"]), 0.0
            growth = 0.0
        if slopes.size not in {k * (len(knots) + 1 if knots else 1) for k in (1, 2)}:
            raise ValueError(f"calibration map: {slopes.size} slopes do not fit {len(knots)} knots")
        return cls(
            np.asarray(d["widen80"], dtype=np.float64),
            np.asarray(d["widen95"], dtype=np.float64),
            knots,
            slopes,
            intercept,
            coef,
            str(d.get("fittedOn", "")),
            bool(d.get("targetsMet", False)),
            growth,
        )


def load_calibration(path: Path | None = None) -> Calibration:
    """The shipped calibration (identity when the file is absent)."""
    path = path or CALIBRATION_FILE
    if not path.exists():
        return Calibration.identity()
    return Calibration.from_dict(json.loads(path.read_text()))


def _widen_factor(
    r: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float, weight: np.ndarray | None = None
) -> float:
    """The factor c with share(c lo <= r <= c hi) closest to ``level`` (grid 0.3..4, step 0.005); the share
    weighted by ``weight`` when given."""
    grid = np.arange(0.3, 4.0, 0.005)
    cover = np.array([np.average((r >= c * lo) & (r <= c * hi), weights=weight) for c in grid])
    return float(grid[int(np.argmin(np.abs(cover - level)))])


def fit_calibration(
    raw: np.ndarray,
    event: np.ndarray,
    residual: np.ndarray,
    quantiles: np.ndarray,
    *,
    fitted_on: str,
    base: np.ndarray | None = None,
    knots: tuple[float, ...] = risk_map.KNOTS,
    by_base: bool = False,
    use_growth: bool = False,
    targets_met: bool = False,
    weight: np.ndarray | None = None,
) -> Calibration:
    """Fit the calibration from replayed forecasts: the risk map, per-hour interval factors.

    ``raw``/``event``: (N,) raw path shares and whether the threshold was crossed; ``base``: (N,) the
    histories' base rates (None: a map of the raw risk alone). ``residual``: (N, H) realised
    (y - forecast) / scale; ``quantiles``: (N, 4, H) path quantiles (0.025, 0.1, 0.9, 0.975) of the scaled
    errors, the interval ends before widening. ``use_growth``: the map also weighs the band growth of
    these quantiles (:func:`risk_map.band_growth`). ``weight``: (N,) weights of the forecasts in the map's
    likelihood and in the intervals' coverage (None: equal).
    """
    growth = risk_map.band_growth(quantiles) if use_growth else None
    fitted = risk_map.fit_map(raw, event, base, knots, by_base=by_base, growth=growth, weight=weight)
    slopes, intercept, coef = fitted[:3]
    growth_coef = float(fitted[3]) if use_growth else 0.0  # type: ignore[misc]
    h = residual.shape[1]
    w80 = [
        _widen_factor(residual[:, k], quantiles[:, 1, k], quantiles[:, 2, k], 0.8, weight) for k in range(h)
    ]
    w95 = [
        _widen_factor(residual[:, k], quantiles[:, 0, k], quantiles[:, 3, k], 0.95, weight) for k in range(h)
    ]
    return Calibration(
        _smooth(np.array(w80)),
        _smooth(np.array(w95)),
        tuple(knots),
        slopes,
        intercept,
        coef,
        fitted_on,
        targets_met,
        growth_coef,
    )


def _smooth(w: np.ndarray) -> np.ndarray:
    """Centred 3-hour mean of per-hour factors: neighbouring hours share most of their errors, so the
    hour-to-hour wiggle of factors fitted hour by hour is sampling noise."""
    if w.size < 3:
        return w
    padded = np.concatenate([[w[0]], w, [w[-1]]])
    return np.convolve(padded, np.ones(3) / 3, mode="valid")


# ---------------------------------------------------------------------------------------------- model


def _ets_params(
    y: np.ndarray, season: int | None
) -> tuple[float, float, float, float, float, float, np.ndarray]:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    kw: dict = {"error": "add", "trend": "add", "damped_trend": True, "initialization_method": "heuristic"}
    if season:
        kw.update(seasonal="add", seasonal_periods=season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ETSModel(y, **kw).fit(disp=False, maxiter=200)
    s0 = np.asarray(res.initial_seasonal, dtype=np.float64) if season else np.zeros(0)
    return (
        float(res.smoothing_level),
        float(res.smoothing_trend),
        float(res.smoothing_seasonal) if season else 0.0,
        float(res.damping_trend),
        float(res.initial_level),
        float(res.initial_trend),
        s0,
    )


def _ets_paths(y: np.ndarray, season: int | None, horizon: int) -> np.ndarray:
    """Forecasts 1..horizon ahead from every hour of ``y`` (row t: made after seeing y[t]), shape (n, H).

    The additive damped-trend ETS recursion with statsmodels' fitted parameters and initial states (a test
    checks the last row against ``ETSResults.forecast``)."""
    a, b, g, phi, level, trend, s0 = _ets_params(y, season)
    n, m = y.size, season or 0
    s = np.zeros(n + max(m, 1) + horizon)
    if m:
        s[:m] = s0
    lv, tr = np.empty(n), np.empty(n)
    for t in range(n):
        seas = s[t] if m else 0.0
        e = y[t] - (level + phi * trend + seas)
        level, trend = level + phi * trend + a * e, phi * trend + b * e
        if m:
            s[t + m] = seas + g * e
        lv[t], tr[t] = level, trend
    damp = np.cumsum(phi ** np.arange(1, horizon + 1))
    out = lv[:, None] + tr[:, None] * damp[None, :]
    if m:
        # the season used at t + h (h <= m) was set at t + h - m <= t: known at t
        idx = np.arange(n)[:, None] + np.arange(1, horizon + 1)[None, :]
        out = out + s[np.minimum(idx, n + m - 1)]
    return out


def _seasonal_forecasts(y: np.ndarray, seasons: tuple[int, ...], horizon: int) -> tuple[str, np.ndarray]:
    """(method, forecasts from every hour, shape (n, H)) for the detected ``seasons``."""
    if WEEK in seasons:
        from statsmodels.tsa.seasonal import MSTL

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comp = np.asarray(MSTL(y, periods=seasons).fit().seasonal, dtype=np.float64).reshape(y.size, -1)
        base = _ets_paths(y - comp.sum(axis=1), None, horizon)
        idx = np.arange(y.size)[:, None] + np.arange(1, horizon + 1)[None, :]
        for k, p in enumerate(seasons):
            src = idx - p  # the component one cycle before the target hour
            base = base + np.where(src >= 0, comp[np.clip(src, 0, y.size - 1), k], np.nan)
        name = "MSTL(" + ",".join(str(p) for p in seasons) + ")+ETS(A,Ad,N)"
        return name, base
    if DAY in seasons:
        return "ETS(A,Ad,A)24", _ets_paths(y, DAY, horizon)
    return "ETS(A,Ad,N)", _ets_paths(y, None, horizon)


@dataclass(frozen=True)
class RiskForecast:
    """The predictive distribution of the next ``HORIZON`` hours: forecast + scale x error trajectories."""

    method: str
    seasons: tuple[int, ...]
    mean: np.ndarray  # (H,)
    scale: float
    z: np.ndarray  # (k, H) scaled error trajectories
    history_points: int
    last_value: float
    bounds: tuple[float, float] = (-math.inf, math.inf)

    def paths(self) -> np.ndarray:
        """Future paths, shape (k, H), clipped to the metric's bounds."""
        return np.clip(self.mean[None, :] + self.scale * self.z, self.bounds[0], self.bounds[1])

    def z_quantiles(self) -> np.ndarray:
        """Quantiles (0.025, 0.1, 0.9, 0.975) of the scaled errors per hour, shape (4, H)."""
        return np.quantile(self.z, [0.025, 0.1, 0.9, 0.975], axis=0)

    def interval(self, level: float, calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` (0.8 or 0.95) interval per hour, after the calibration's widening."""
        q = self.z_quantiles()
        lo_q, hi_q = (q[1], q[2]) if level == 0.8 else (q[0], q[3])
        w = calibration.widen(level, self.mean.size)
        lo = self.mean + self.scale * w * lo_q
        hi = self.mean + self.scale * w * hi_q
        return np.clip(lo, *self.bounds), np.clip(hi, *self.bounds)

    def path_share(self, threshold: float, direction: Direction) -> float:
        """Share of paths that cross ``threshold`` at some hour of the horizon."""
        return float(crossed(self.paths(), threshold, direction).any(axis=1).mean())

    def raw_risk(self, threshold: float, direction: Direction) -> float:
        """The share of paths crossing ``threshold`` at some hour, kernel-smoothed over the paths' extremes.

        Each path's maximum (minimum for "below") counts as a Gaussian kernel around it (Silverman's
        bandwidth), so the risk falls off smoothly with the distance to the threshold instead of being
        exactly 0 for every threshold beyond the most extreme of a few hundred paths."""
        paths = self.paths()
        ext = paths.max(axis=1) if direction == "above" else -paths.min(axis=1)
        thr = threshold if direction == "above" else -threshold
        sd = float(np.std(ext))
        iqr = float(np.subtract(*np.quantile(ext, [0.75, 0.25])))
        spread = min(sd, iqr / 1.349) if iqr > 0 else sd
        bw = max(0.9 * spread * ext.size ** (-0.2), 1e-9 * max(self.scale, 1e-12))
        return float(special.ndtr((ext - thr) / bw).mean())


def crossed(values: np.ndarray, threshold: float, direction: Direction) -> np.ndarray:
    return values > threshold if direction == "above" else values < threshold


def _local_scale(e: np.ndarray, window: int) -> np.ndarray:
    """Mean |e| over the last ``window`` values up to each index (NaN-free, at least one value)."""
    a = np.abs(np.nan_to_num(e))
    c = np.concatenate([[0.0], np.cumsum(a)])
    idx = np.arange(1, a.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _short(y: np.ndarray, horizon: int, bounds: tuple[float, float]) -> RiskForecast:
    """Too short a history for error trajectories: the Gaussian ETS of ``core.forecast`` (damped trend, a
    daily season from 58 hours), paths from its innovations form; a naive random walk below 10 points."""

    last = float(y[-1])
    if y.size >= MIN_ETS and np.ptp(y) > 0:
        method, mean, sigma, impulse, _params = fit_ets(y, horizon, DAY)
        sigma = max(sigma, 1e-9)
        paths = ForecastResult(method, pl.DataFrame(), mean, sigma, impulse, int(y.size), last).paths(1000, 0)
        seasons = (DAY,) if method == "ETS(A,Ad,A)" else ()
        return RiskForecast(
            f"{method} Gaussian", seasons, mean, sigma, (paths - mean) / sigma, int(y.size), last, bounds
        )
    d = np.diff(y)
    sd = float(np.std(d)) if d.size > 1 and np.std(d) > 0 else max(abs(last) * 1e-3, 1e-9)
    z = np.cumsum(np.random.default_rng(0).standard_normal((1000, horizon)), axis=1)
    return RiskForecast("naive", (), np.full(horizon, last), sd, z, int(y.size), last, bounds)


def risk_forecast(
    y: np.ndarray,
    horizon: int = HORIZON,
    *,
    bounds: tuple[float, float] = (-math.inf, math.inf),
    seasons: tuple[int, ...] | None = None,
) -> RiskForecast:
    """The predictive distribution of the ``horizon`` hours after hourly history ``y`` (oldest first).

    ``seasons`` defaults to the ones detected on ``y``. Raises ValueError with fewer than 3 points."""
    y = np.asarray(y, dtype=np.float64)
    if y.size < 3 or not np.all(np.isfinite(y)):
        raise ValueError(f"need at least 3 finite hourly points to forecast, got {y.size}")
    h = int(horizon)
    if y.size - BURN - h < MIN_TRAJECTORIES or not np.ptp(y) > 0:
        return _short(y, h, bounds)
    found = detect_seasons(y) if seasons is None else tuple(seasons)
    method, fc = _seasonal_forecasts(y, found, h)
    n = y.size
    one_step = np.full(n, np.nan)
    one_step[1:] = y[1:] - fc[:-1, 0]
    scale = _local_scale(one_step[1:], SCALE_WINDOW)  # scale[t - 1]: up to and including hour t
    floor = 1e-6 * (float(np.mean(np.abs(y))) + 1e-9)
    origins = np.arange(BURN, n - h)
    steps = np.arange(1, h + 1)
    err = y[origins[:, None] + steps[None, :]] - fc[origins]
    z = err / np.maximum(scale[origins - 1], floor)[:, None]
    z = z[np.all(np.isfinite(z), axis=1)]
    if z.shape[0] < MIN_TRAJECTORIES:
        return _short(y, h, bounds)
    return RiskForecast(method, found, fc[-1], max(float(scale[-1]), floor), z, int(n), float(y[-1]), bounds)


@dataclass(frozen=True)
class Assessment:
    """The failure risk of one series: the stated risk, the raw one, the forecast and its band."""

    risk: float
    raw_risk: float
    forecast: RiskForecast
    frame: pl.DataFrame  # bucket_start, forecast, lower_80, upper_80, lower_95, upper_95
    calibrated: bool  # the calibration's targets held on the held-out corpus
    base_rate: float = math.nan  # the history's base rate (risk_map.history_rate), an input of the map


def assess(
    history: pl.DataFrame,
    threshold: float,
    direction: Direction,
    *,
    horizon: int = HORIZON,
    bounds: tuple[float, float] = (-math.inf, math.inf),
    calibration: Calibration | None = None,
) -> Assessment:
    """The 24-hour failure risk of an hourly ``history`` (bucket_start, value on a complete hourly grid)."""
    cal = calibration or load_calibration()
    y = history["value"].to_numpy().astype(np.float64)
    fc = risk_forecast(y, horizon, bounds=bounds)
    raw = fc.raw_risk(threshold, direction)
    base = risk_map.history_rate(crossed(y, threshold, direction), horizon)
    lo80, hi80 = fc.interval(0.8, cal)
    lo95, hi95 = fc.interval(0.95, cal)
    last_t = history["bucket_start"][-1]
    frame = pl.DataFrame(
        {
            "bucket_start": pl.datetime_range(
                last_t + timedelta(hours=1), last_t + timedelta(hours=horizon), "1h", eager=True
            ),
            "forecast": np.clip(fc.mean, *bounds),
            "lower_80": np.minimum(lo80, np.clip(fc.mean, *bounds)),
            "upper_80": np.maximum(hi80, np.clip(fc.mean, *bounds)),
            "lower_95": np.minimum(np.minimum(lo95, lo80), np.clip(fc.mean, *bounds)),
            "upper_95": np.maximum(np.maximum(hi95, hi80), np.clip(fc.mean, *bounds)),
        }
    )
    growth = float(risk_map.band_growth(fc.z_quantiles()))
    return Assessment(float(cal.risk(raw, base, growth)), raw, fc, frame, cal.targets_met, base)
