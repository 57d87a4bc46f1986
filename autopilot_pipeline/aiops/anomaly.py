"""Causal, robust anomaly detection for operational time series.

The detector runs a small bank of robust one-step-ahead forecasters side by side on every series and, at
each step, trusts the one whose recent prediction errors were smallest (decided from the past only):

* robust exponential smoothing of the level with smoothing factors ``alphas`` (``alpha=1`` is "the last
  value", right for random-walk-like series such as CPU or temperature; small alphas suit noisy flat
  series), with Huber-clipped updates so a spike barely moves the baseline (Gelper, Fried & Croux 2010);
* the same with an additive seasonal profile (Holt-Winters style) whose period is found causally from
  the autocorrelation of the history seen so far (checkpoints at 128, 256, 512, ... points);
* a robust exponentially weighted scale of the one-step errors (clipped squares), floored by the data's
  quantum so integer counts and constant series do not divide by zero;
* level-shift adaptation: ``shift_run`` consecutive exceedances on the same side re-level the baseline
  to the new mean and restore the scale, so a permanent shift raises a few alarms, not hundreds.

The robust z of the chosen forecaster is mapped to a continuous score in [0, 1] by the Hill function
``|z|^p / (|z|^p + threshold^p)``: 0.5 exactly at the decision threshold, strictly increasing, so the score
ranks points and ``is_anomaly == (anomaly_score >= 0.5)`` (before the minimum-history gate).

Causality: the score at step t is computed from values at steps <= t only (the state before t, then
the value at t). Initial level and scale come from the first ``min_history`` points, whose scores are
forced to 0, so nothing after them leaks backwards.

Everything is vectorised across series: the time loop runs once over a (time x series x model) array,
which is how 1,000 minute-level series are scored in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

from autopilot_pipeline.aiops.detector_season import checkpoints as _checkpoints
from autopilot_pipeline.aiops.detector_season import detect_periods as _detect_periods

Direction = Literal["both", "up", "down"]

_MAD_TO_SD = 1.4826
_MAX_SEASON_BINS = 96


def _clipped_square_mean(k: float) -> float:
    """E[min(Z^2, k^2)] for a standard normal Z: makes the clipped-square scale consistent for Gaussians."""
    phi = math.exp(-0.5 * k * k) / math.sqrt(2 * math.pi)
    tail = 0.5 * math.erfc(k / math.sqrt(2))
    return (1 - 2 * tail) - 2 * k * phi + 2 * k * k * tail


@dataclass(frozen=True)
class AnomalyConfig:
    """Tuning knobs of the detector; the defaults were chosen on synthetic data (docs/AI_OPS_GUIDE.md)."""

    threshold: float = 4.5
    """|robust z| at which a point is an anomaly; the score is 0.5 there."""
    score_power: float = 4.0
    """Steepness of the z -> score map (Hill exponent)."""
    min_history: int = 30
    """Points needed before any score is given (scores are 0 before)."""
    alphas: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03)
    """Level smoothing factors of the non-seasonal forecasters."""
    seasonal_alphas: tuple[float, ...] = (0.3, 0.1, 0.03)
    """Level smoothing factors of the seasonal forecasters (empty tuple: no seasonal models)."""
    gamma: float = 0.2
    """Smoothing of the seasonal profile."""
    period: int | None = None
    """Season length in samples; None finds it from the past autocorrelation, 0 disables seasonality."""
    huber_k: float = 2.0
    """Clip (in scale units) of a residual's pull on the level."""
    scale_k: float = 3.0
    """Clip (in scale units) of a residual's contribution to the scale."""
    scale_beta: float = 0.02
    """Forgetting factor of the exponentially weighted scale (about 1/beta points of memory)."""
    shift_k: float | None = None
    """|z| counted towards a level shift (None: the threshold)."""
    shift_run: int = 5
    """Consecutive same-side exceedances that re-level the baseline (0 disables)."""
    combine: Literal["select", "max", "select+slow"] = "select"
    """How the bank's z values become one: the best model's, the largest, or the best and the slowest."""
    recall_window: int = 50
    """After a re-level, a return to the previous level within this many points is not an anomaly."""
    tail_window: int = 1000
    """Past points used to calibrate the tails (0 disables): if more than 1 % of recent |z| on one side
    exceed the Gaussian 99 % point, that side's z is shrunk accordingly (heavy-tailed and count data)."""
    tail_min: int = 200
    """Points needed before tail calibration starts."""
    direction: Direction = "both"
    """Which deviations count: both sides, only above (latency, errors) or only below (uptime)."""


@dataclass
class BatchScores:
    """Per-point results of :func:`score_batch`, each an array of shape (time, series)."""

    z: np.ndarray
    expected: np.ndarray
    score: np.ndarray
    is_anomaly: np.ndarray
    period: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def z_to_score(z: np.ndarray | float, threshold: float = 4.5, power: float = 4.0) -> np.ndarray:
    """Map |robust z| to [0, 1]: 0.5 at ``threshold``, monotone, no plateau until |z| is ~1e4 x threshold."""
    a = np.abs(np.asarray(z, dtype=np.float64)) / threshold
    with np.errstate(over="ignore", invalid="ignore"):
        ap = a**power
        out = np.where(np.isinf(ap), 1.0, ap / (1.0 + ap))
    return np.where(np.isnan(a), 0.0, out)


def score_to_z(score: np.ndarray | float, threshold: float = 4.5, power: float = 4.0) -> np.ndarray:
    """Inverse of :func:`z_to_score` (for reading a confidence back as a z)."""
    s = np.clip(np.asarray(score, dtype=np.float64), 0.0, 1.0 - 1e-16)
    return threshold * (s / (1.0 - s)) ** (1.0 / power)


# ------------------------------------------------------------------------------------------- the engine


def score_batch(
    values: np.ndarray,
    grid: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    config: AnomalyConfig | None = None,
) -> BatchScores:
    """Score many series at once.

    ``values`` is (time x series) with each series' valid points packed at the top and NaN padding below
    (``lengths`` gives each series' count). ``grid`` (same shape, int) is each point's position on the
    series' regular sampling grid, used for seasonal phase so gaps do not shift the season; default = row.
    """
    cfg = config or AnomalyConfig()
    x_all = np.asarray(values, dtype=np.float64)
    if x_all.ndim == 1:
        x_all = x_all[:, None]
    t_len, n_ser = x_all.shape
    if lengths is None:
        lengths = np.full(n_ser, t_len, dtype=np.int64)
    if grid is None:
        grid = np.broadcast_to(np.arange(t_len, dtype=np.int64)[:, None], (t_len, n_ser))
    z_out = np.zeros((t_len, n_ser))
    exp_out = np.full((t_len, n_ser), np.nan)
    n0 = max(int(cfg.min_history), 3)
    if t_len == 0 or n_ser == 0:
        return BatchScores(z_out, exp_out, np.zeros_like(z_out), np.zeros((t_len, n_ser), bool))

    alphas = np.array(list(cfg.alphas) + list(cfg.seasonal_alphas), dtype=np.float64)
    seasonal = np.array([False] * len(cfg.alphas) + [True] * len(cfg.seasonal_alphas))
    n_mod = alphas.size
    gamma_m = np.where(seasonal, np.minimum(cfg.gamma, 1.0 - alphas), 0.0)

    # Seasonal phase per point, piecewise by checkpoint (each period uses only the prefix before it).
    phase = np.zeros((t_len, n_ser), dtype=np.int64)
    has_season = np.zeros((t_len, n_ser), dtype=bool)
    reset_at = np.zeros((t_len, n_ser), dtype=bool)
    period_now = np.zeros(n_ser, dtype=np.int64)
    if seasonal.any() and cfg.period != 0:
        cps = _checkpoints(t_len) if cfg.period is None else [n0]
        for i, c in enumerate(cps):
            end = cps[i + 1] if i + 1 < len(cps) else t_len
            if c >= t_len:
                break
            cols = np.flatnonzero(lengths > c)
            if cols.size == 0:
                break
            if cfg.period is None:
                new_p = _detect_periods(x_all[:c, cols], period_now[cols])
            else:
                new_p = np.full(cols.size, int(cfg.period), dtype=np.int64)
            changed = new_p != period_now[cols]
            reset_at[c, cols[changed]] = True
            period_now[cols] = new_p
            sc = cols[new_p >= 2]
            if sc.size:
                p = period_now[sc][None, :]
                bins = np.minimum(p, _MAX_SEASON_BINS)
                phase[c:end, sc] = ((grid[c:end, sc] % p) * bins) // p
                has_season[c:end, sc] = True
    n_bins = int(phase.max()) + 1

    # Initial state from the first n0 points (scores there are forced to 0).
    head = x_all[:n0]
    level0 = np.nanmedian(head, axis=0)
    level0 = np.where(np.isnan(level0), 0.0, level0)
    d = np.diff(head, axis=0)
    mad_d = _MAD_TO_SD * np.nanmedian(np.abs(d - np.nanmedian(d, axis=0)), axis=0) / math.sqrt(2)
    mad_x = _MAD_TO_SD * np.nanmedian(np.abs(head - level0), axis=0)
    sig0 = np.maximum(np.nan_to_num(mad_d), np.nan_to_num(0.1 * mad_x))

    # Scale floor per point: half the smallest step seen before t (integer counts, percentages, constant
    # series), and a tiny fraction of the magnitude.
    steps = np.full(x_all.shape, np.inf)
    steps[2:] = np.abs(x_all[1:-1] - x_all[:-2])
    steps[~(steps > 0)] = np.inf
    quantum = np.minimum.accumulate(steps, axis=0)
    spread = np.nan_to_num(np.nanmax(np.abs(head), axis=0), nan=1.0)
    floor_all = np.maximum(np.where(np.isfinite(quantum), 0.5 * quantum, 0.0), 1e-9 * spread + 1e-300)

    n_plain = len(cfg.alphas)
    n_seas = n_mod - n_plain
    level = np.repeat(level0[:, None], n_mod, axis=1)
    sig2 = np.repeat((sig0**2)[:, None], n_mod, axis=1)
    season = np.zeros((n_ser, max(n_seas, 1), n_bins))
    s_full = np.zeros((n_ser, n_mod))
    run = np.zeros((n_ser, n_mod))
    run_sum = np.zeros((n_ser, n_mod))
    run_sig2 = sig2.copy()
    run_lvl = level.copy()
    old_level = level.copy()
    old_left = np.zeros((n_ser, n_mod))
    recall_until = -1
    slow = int(np.argmin(np.where(seasonal, alphas - 1.0, alphas))) if n_mod else 0
    c_rho = _clipped_square_mean(cfg.scale_k)
    beta, hk, sk = cfg.scale_beta, cfg.huber_k, cfg.scale_k
    shk = cfg.threshold if cfg.shift_k is None else cfg.shift_k
    run_needed = cfg.shift_run
    rows = np.arange(n_ser)
    alpha_row = alphas[None, :]
    gamma_row = gamma_m[None, n_plain:]
    unusable = np.broadcast_to(seasonal[None, :], (n_ser, n_mod))
    any_season = has_season.any(axis=1)
    resets = set(np.flatnonzero(reset_at.any(axis=1)).tolist())
    all_valid = ~np.isnan(x_all)
    full_rows = all_valid.all(axis=1)

    for t in range(t_len):
        x = x_all[t]
        dense = bool(full_rows[t])
        if not dense:
            valid = all_valid[t]
            if not valid.any():
                continue
            v2 = valid[:, None]
        if t in resets:
            season[reset_at[t]] = 0.0
        seasonal_now = bool(any_season[t]) and n_seas > 0
        if seasonal_now:
            ph = phase[t]
            hs = has_season[t][:, None]
            s_cur = season[rows, :, ph]
            s_full[:, n_plain:] = s_cur
            pred = level + s_full
        else:
            pred = level
        sig = np.maximum(np.sqrt(sig2), floor_all[t][:, None])
        r = x[:, None] - pred
        z = r / sig
        if t >= n0:
            z_rep = z
            if t <= recall_until:
                # Right after a re-level, coming back to the old level is recovery, not a new anomaly.
                z_old = (r + level - old_level) / sig
                z_rep = np.where((old_left > 0) & (np.abs(z_old) < np.abs(z)), z_old, z)
            masked = unusable & ~hs if seasonal_now else unusable
            if cfg.combine == "max":
                best = np.argmax(np.where(masked, -1.0, np.abs(z_rep)), axis=1)
            else:
                best = np.argmin(np.where(masked, np.inf, sig), axis=1)
            zb = z_rep[rows, best]
            if cfg.combine == "select+slow":
                s_idx = np.where(has_season[t], slow, int(np.argmin(alphas[:n_plain])))
                zs = z_rep[rows, s_idx]
                take = np.abs(zs) > np.abs(zb)
                zb = np.where(take, zs, zb)
                best = np.where(take, s_idx, best)
            eb = pred[rows, best]
            if dense:
                z_out[t] = zb
                exp_out[t] = eb
            else:
                z_out[t] = np.where(valid, zb, 0.0)
                exp_out[t] = np.where(valid, eb, np.nan)
        # Robust updates (Huber-clipped level and season, clipped-square scale).
        lim = hk * sig
        rc = np.minimum(np.maximum(r, -lim), lim)
        new_level = level + alpha_row * rc
        new_sig2 = sig2 * (
            (1 - beta) + (beta / c_rho) * np.minimum(np.abs(z), sk) ** 2
        )  # no overflow at huge z
        if run_needed > 0:
            sgn = (z > shk).astype(np.float64) - (z < -shk)
            cont = sgn * run > 0
            desea = r + level  # the value minus its seasonal part
            run = np.where(cont, run + sgn, sgn)
            run_sum = np.where(cont, run_sum + desea, desea)
            run_sig2 = np.where(cont, run_sig2, sig2)
            run_lvl = np.where(cont, run_lvl, level)
            shift = np.abs(run) >= run_needed
            if t <= recall_until:
                old_left = np.maximum(old_left - 1, 0)
            if shift.any():
                old_level = np.where(shift, run_lvl, old_level)
                old_left = np.where(shift, float(cfg.recall_window), old_left)
                recall_until = t + cfg.recall_window
                new_level = np.where(shift, run_sum / np.maximum(np.abs(run), 1), new_level)
                new_sig2 = np.where(shift, run_sig2, new_sig2)
                run = np.where(shift, 0.0, run)
        if dense:
            level, sig2 = new_level, new_sig2
        else:
            level = np.where(v2, new_level, level)
            sig2 = np.where(v2, new_sig2, sig2)
        if seasonal_now:
            new_s = s_cur + np.where(hs, gamma_row, 0.0) * rc[:, n_plain:]
            season[rows, :, ph] = new_s if dense else np.where(v2, new_s, s_cur)

    if cfg.tail_window > 0:
        z_out = _calibrate_tails(z_out, n0, cfg)
    if cfg.direction == "up":
        z_eff = np.maximum(z_out, 0.0)
    elif cfg.direction == "down":
        z_eff = np.maximum(-z_out, 0.0)
    else:
        z_eff = np.abs(z_out)
    score = z_to_score(z_eff, cfg.threshold, cfg.score_power)
    is_anom = z_eff >= cfg.threshold
    return BatchScores(z_out, exp_out, score, is_anom, period_now)


_Z99 = 2.3263478740408408  # one-sided 1 % point of the standard normal
_TAIL_BLOCK = 16


def _calibrate_tails(z: np.ndarray, n0: int, cfg: AnomalyConfig) -> np.ndarray:
    """Shrink z on a side whose recent tail is heavier than Gaussian (causal: past points only).

    For each side, the 99th percentile q of roughly the last ``tail_window`` scored z values (clipped at
    the threshold, so one burst cannot mask everything: the shrink is at most threshold / 2.326) is read
    off exceedance counts at a ladder of levels, and z on that side is divided by max(1, q / 2.326).
    Counts are kept per block of ``_TAIL_BLOCK`` points and the window covers whole blocks strictly before
    the current one, which keeps it cheap and causal.
    """
    thr = cfg.threshold
    t_len, n_ser = z.shape
    blk = _TAIL_BLOCK
    n_blk = -(-t_len // blk)
    w_blk = max(1, int(cfg.tail_window) // blk)
    scored = np.zeros(z.shape, dtype=bool)
    scored[n0:] = True
    scored &= z != 0.0

    def window_counts(mask: np.ndarray) -> np.ndarray:
        padded = np.zeros((n_blk * blk, n_ser), dtype=np.int32)
        padded[:t_len] = mask
        per_blk = padded.reshape(n_blk, blk, n_ser).sum(axis=1, dtype=np.int32)
        c = np.zeros((n_blk + 1, n_ser), dtype=np.int64)
        np.cumsum(per_blk, axis=0, out=c[1:])
        j = np.arange(n_blk)
        return (c[j] - c[np.clip(j - w_blk, 0, None)]).astype(np.float64)  # blocks [j - w, j - 1]

    n_past = window_counts(scored)
    enough = n_past >= cfg.tail_min
    levels = np.linspace(_Z99, thr, 6)
    out = z.copy()
    for sign in (1.0, -1.0):
        zs = sign * z
        q = np.full((n_blk, n_ser), thr)
        found = np.zeros((n_blk, n_ser), dtype=bool)
        prev = None
        for k, level in enumerate(levels):
            frac = window_counts(scored & (zs > level)) / np.maximum(n_past, 1)
            if k == 0:
                found = frac <= 0.01
                q = np.where(found, _Z99, q)
            else:
                # Interpolate where the exceedance fraction crosses 1 % between two ladder levels.
                cross = ~found & (frac <= 0.01)
                span = np.where(prev > frac, (prev - 0.01) / np.maximum(prev - frac, 1e-12), 1.0)
                q = np.where(cross, levels[k - 1] + span * (level - levels[k - 1]), q)
                found |= cross
            prev = frac
        factor = np.where(enough, np.maximum(q / _Z99, 1.0), 1.0)
        factor_rows = np.repeat(factor, blk, axis=0)[:t_len]
        out = np.where(zs > 0, z / factor_rows, out)
    return out


# ----------------------------------------------------------------------------------------- single series


def _to_epoch_seconds(timestamps: Sequence | np.ndarray | pl.Series) -> np.ndarray:
    """Timestamps (datetimes, numbers or a polars Series) as float seconds since the epoch."""
    s = timestamps if isinstance(timestamps, pl.Series) else pl.Series("t", list(timestamps))
    if s.dtype == pl.Datetime or isinstance(s.dtype, pl.Datetime):
        return s.dt.epoch("us").cast(pl.Float64).to_numpy() / 1e6
    if s.dtype == pl.Date:
        return s.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64).to_numpy() / 1e6
    if s.dtype.is_numeric():
        return s.cast(pl.Float64).to_numpy()
    raise TypeError(f"timestamps must be datetimes or numbers, not {s.dtype}")


def grid_index(t_sec: np.ndarray) -> np.ndarray:
    """Position of each (sorted) timestamp on the series' regular grid of its median spacing."""
    if t_sec.size < 2:
        return np.zeros(t_sec.size, dtype=np.int64)
    dt = np.diff(t_sec)
    pos = dt[dt > 0]
    if pos.size == 0:
        return np.arange(t_sec.size, dtype=np.int64)
    step = float(np.median(pos))
    g = np.rint((t_sec - t_sec[0]) / step).astype(np.int64)
    return np.maximum.accumulate(g)


def reason_text(z: float, label: str = "Value") -> str:
    side = "above" if z > 0 else "below"
    return f"{label} is {abs(z):.1f} standard deviations {side} normal"


def score_series(
    timestamps: Sequence | np.ndarray | pl.Series,
    values: Sequence | np.ndarray | pl.Series,
    config: AnomalyConfig | None = None,
) -> pl.DataFrame:
    """Score one series; one output row per input row, in input order.

    Missing values (None/NaN) get score 0 and are skipped by the model. Unsorted timestamps are scored in
    time order (ties keep input order). Columns: timestamp, value, anomaly_score, is_anomaly,
    expected_value, robust_z, reason (null unless is_anomaly).
    """
    cfg = config or AnomalyConfig()
    v = np.asarray(pl.Series("v", values, dtype=pl.Float64, strict=False).fill_null(np.nan).to_numpy())
    ts_series = timestamps if isinstance(timestamps, pl.Series) else pl.Series("timestamp", list(timestamps))
    t_sec = _to_epoch_seconds(ts_series)
    if t_sec.size != v.size:
        raise ValueError(f"{t_sec.size} timestamps but {v.size} values")
    order = np.argsort(t_sec, kind="stable")
    v_sorted = v[order]
    keep = ~np.isnan(v_sorted)
    idx_valid = order[keep]
    g = grid_index(t_sec[order])[keep]
    res = score_batch(v_sorted[keep][:, None], g[:, None], np.array([keep.sum()]), cfg)
    n = v.size
    score = np.zeros(n)
    z = np.zeros(n)
    expected = np.full(n, np.nan)
    flag = np.zeros(n, dtype=bool)
    score[idx_valid] = res.score[:, 0]
    z[idx_valid] = res.z[:, 0]
    expected[idx_valid] = res.expected[:, 0]
    flag[idx_valid] = res.is_anomaly[:, 0]
    reasons = [reason_text(zz) if f else None for zz, f in zip(z, flag, strict=True)]
    return pl.DataFrame(
        {
            "timestamp": ts_series.rename("timestamp"),
            "value": pl.Series(v),
            "anomaly_score": score,
            "is_anomaly": flag,
            "expected_value": pl.Series(expected).fill_nan(None),
            "robust_z": z,
            "reason": pl.Series(reasons, dtype=pl.String),
        }
    )
