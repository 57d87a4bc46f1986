"""The forecasting half of the detector: causal one-step forecasts and their residuals, many series at once.

A small bank of robust forecasters runs side by side on every series (a time loop over a
(series x model) array, vectorised across series):

* robust exponential smoothing of the level, smoothing factors ``PLAIN_ALPHAS`` (1 = "the last value",
  right for random-walk-like series; small factors suit noisy flat series); Huber-clipped updates so a
  spike barely moves the level (Gelper, Fried & Croux 2010);
* the same plus a seasonal profile at full resolution (one slot per sample of the season, so the sharp
  edge of a square wave or a daily batch job is learned exactly, not smeared over a bin). The season
  length is found causally at checkpoints (:mod:`.detector_season`); when it appears the profile starts
  from the median of the last three cycles, then follows with Huber-clipped updates;
* level-shift adaptation: ``RUN`` consecutive residuals beyond ``RUN_K`` scales on one side re-level a
  model to the mean of those points, so a permanent shift is the new normal within a bounded number of
  points instead of an alarm per point.

At each step the model with the smallest recent mean absolute error (decided from the past only) gives
the forecast. The slowest model's residual is kept too: it is what shows a slow drift (a leak) that
the fast models follow. Nothing here decides what is anomalous: :mod:`.detector_calib` turns these
residuals into calibrated tail probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autopilot_pipeline.aiops.detector_season import checkpoints, detect_periods

__all__ = ["PLAIN_ALPHAS", "SEASONAL_ALPHAS", "Residuals", "forecast_residuals"]

PLAIN_ALPHAS = (1.0, 0.3, 0.1, 0.03, 0.01)
SEASONAL_ALPHAS = (0.3, 0.1, 0.03, 0.01)
GAMMA = 0.2  # smoothing of the seasonal profile: about five cycles of memory
BETA = 0.02  # forgetting of the mean absolute error: about fifty points of memory
HUBER_K = 2.0  # clip of a residual's pull on level and profile, in scales
ERR_K = 4.0  # clip of a residual's contribution to the mean absolute error, in scales
RUN, RUN_K = 3, 4.0  # level shift: RUN same-side residuals beyond RUN_K scales re-level the model
MAX_PERIOD = 10080  # a week of minutes: longest season stored at full resolution
_MAE_TO_SD = 1.2533  # sd / mean absolute deviation of a normal


@dataclass
class Residuals:
    """Per-point outputs of :func:`forecast_residuals`, arrays of shape (time, series)."""

    resid: np.ndarray  # value - forecast of the selected model
    expected: np.ndarray  # the selected model's forecast
    slow_resid: np.ndarray  # value - forecast of the slowest model (seasonal when a season is known)
    floor: np.ndarray  # smallest meaningful deviation (half the data's quantum, or a tiny fraction)
    period: np.ndarray  # season length per series at the end (0: none), shape (series,)
    regime: np.ndarray  # row at which the season in force at each point started (residuals before differ)
    seasonal: np.ndarray  # the selected forecast at the point is a seasonal one
    scale: np.ndarray  # the selected model's running scale (sd-equivalent of its mean absolute error)


def _season_phases(
    x: np.ndarray, grid: np.ndarray, lengths: np.ndarray, period: int | None
) -> tuple[np.ndarray, np.ndarray, dict[int, list[tuple[int, int]]]]:
    """Season length in force at each row (0: none) and the (row, series) starts of new seasons.

    Periods are decided at checkpoints from the rows before them only."""
    t_len, n_ser = x.shape
    per_at = np.zeros((t_len, n_ser), dtype=np.int64)
    starts: dict[int, list[tuple[int, int]]] = {}
    if period == 0:
        return per_at, np.zeros(n_ser, dtype=np.int64), starts
    current = np.zeros(n_ser, dtype=np.int64)
    cps = checkpoints(t_len) if period is None else [min(64, t_len)]
    for i, c in enumerate(cps):
        if c >= t_len:
            break
        end = cps[i + 1] if i + 1 < len(cps) else t_len
        cols = np.flatnonzero(lengths > c)
        if cols.size == 0:
            break
        if period is None:
            regular = grid[c - 1, cols] - grid[0, cols] == c - 1
            new = np.zeros(cols.size, dtype=np.int64)
            if regular.any():
                new[regular] = detect_periods(x[:c, cols[regular]], current[cols[regular]])
            for k in np.flatnonzero(~regular):
                # Gaps: seasons live on the sampling grid, so look for them on the prefix interpolated to it.
                j = cols[k]
                slots = np.arange(grid[0, j], grid[c - 1, j] + 1)
                filled = np.interp(slots, grid[:c, j], x[:c, j])
                new[k] = detect_periods(filled[:, None], current[j : j + 1])[0]
        else:
            new = np.full(cols.size, int(period), dtype=np.int64)
        new = np.where((new >= 2) & (new <= MAX_PERIOD), new, 0)
        for j, p in zip(cols.tolist(), new.tolist(), strict=True):
            if p and p != current[j]:
                starts.setdefault(c, []).append((j, p))
        current[cols] = new
        per_at[c:end, cols] = new
    return per_at, current, starts


def _initial_profile(x: np.ndarray, g: np.ndarray, p: int) -> tuple[np.ndarray, float]:
    """Profile (length p) from the last three cycles of a prefix, and the deseasonalised level now."""
    keep = g > g[-1] - 3 * p
    xs, gs = x[keep], g[keep]
    w = min(p, xs.size)
    kernel = np.ones(w) / w
    base = np.convolve(np.pad(xs, (w // 2, w - 1 - w // 2), mode="edge"), kernel, mode="valid")
    cells = np.full((3, p), np.nan)
    cells[np.minimum((g[-1] - gs) // p, 2), gs % p] = xs - base
    seen = np.isfinite(cells).any(axis=0)
    prof = np.zeros(p)
    if seen.any():
        prof[seen] = np.nanmedian(cells[:, seen], axis=0)
        if not seen.all():  # slots inside a gap: interpolate around the cycle from their neighbours
            at = np.flatnonzero(seen)
            prof[~seen] = np.interp(np.flatnonzero(~seen), at, prof[seen], period=p)
    prof -= prof.mean()
    last = g > g[-1] - p
    return prof, float(np.median(x[last] - prof[g[last] % p]))


def forecast_residuals(
    x: np.ndarray,
    grid: np.ndarray,
    lengths: np.ndarray,
    n0: int,
    period: int | None = None,
) -> Residuals:
    """Run the forecaster bank over ``x`` (time x series, valid points packed at the top, NaN below).

    ``grid`` is each point's slot on its series' regular sampling grid (seasonal phase); ``n0`` points
    start the state (their own residuals are in-sample and get no score downstream); ``period`` fixes
    the season length (0: none; None: found from the data)."""
    t_len, n_ser = x.shape
    plain, seas = np.array(PLAIN_ALPHAS), np.array(SEASONAL_ALPHAS)
    alphas = np.concatenate([plain, seas])
    n_plain, n_mod = plain.size, alphas.size
    is_seas = np.arange(n_mod) >= n_plain
    slow_plain, slow_seas = int(np.argmin(plain)), n_plain + int(np.argmin(seas))
    ref_seas = n_plain + int(np.argmin(np.abs(seas - 0.1)))
    # The slowest models never re-level: their lag is what shows a shift or a drift on the long timescale.
    relevels = np.ones((1, n_mod), dtype=bool)
    relevels[0, [slow_plain, slow_seas]] = False

    per_at, per_end, starts = _season_phases(x, grid, lengths, period)
    changed = np.zeros(x.shape, dtype=bool)
    changed[1:] = per_at[1:] != per_at[:-1]
    regime = np.maximum.accumulate(np.where(changed, np.arange(t_len)[:, None], 0), axis=0)
    p_max = max(int(per_at.max()), 1)
    prof = np.zeros((n_ser, p_max))

    head = x[: max(n0, 2)]
    with np.errstate(all="ignore"):
        level0 = np.nan_to_num(np.nanmedian(head, axis=0))
        # One series per row, reduced along the row: numpy sums a row the same way whatever the number
        # of rows, while a column sum of a wide array rounds differently from that of one column, and the
        # last bit decides ties between the models of a noise-free series.
        mae0 = np.nan_to_num(np.nanmean(np.ascontiguousarray(np.abs(head - level0).T), axis=1))
    level = np.repeat(level0[:, None], n_mod, axis=1)
    mae = np.repeat(mae0[:, None], n_mod, axis=1)

    steps = np.full(x.shape, np.inf)
    steps[2:] = np.abs(x[1:-1] - x[:-2])
    steps[~(steps > 0)] = np.inf
    quantum = np.minimum.accumulate(steps, axis=0)
    spread = np.nan_to_num(np.nanmax(np.abs(head), axis=0), nan=1.0)
    floor = np.maximum(np.where(np.isfinite(quantum), 0.5 * quantum, 0.0), 1e-9 * spread + 1e-12)

    resid = np.full(x.shape, np.nan)
    expected = np.full(x.shape, np.nan)
    slow = np.full(x.shape, np.nan)
    chose_season = np.zeros(x.shape, dtype=bool)
    scale_out = np.full(x.shape, np.nan)
    run = np.zeros((n_ser, n_mod))
    run_sum = np.zeros((n_ser, n_mod))
    run_mae = mae.copy()
    rows = np.arange(n_ser)
    a_row = alphas[None, :]
    valid_all = ~np.isnan(x)
    dense_rows = valid_all.all(axis=1)

    # Per-row facts computed once, so the loop body is a short run of array operations.
    active_all = per_at > 0
    any_active = active_all.any(axis=1)
    all_active = active_all.all(axis=1)
    phase_all = grid % np.maximum(per_at, 1)
    seas_f = is_seas[None, :].astype(np.float64)
    seas_inf = np.where(is_seas, np.inf, 0.0)[None, :]
    any_valid = valid_all.any(axis=1)
    slow_idx = np.where(active_all, slow_seas, slow_plain)
    for t in range(t_len):
        if t in starts:
            for j, p in starts[t]:
                prof[j, :p], lvl = _initial_profile(x[:t, j], grid[:t, j], p)
                level[j, is_seas] = lvl
                mae[j, is_seas] = mae[j, ~is_seas].min()
        if not any_valid[t]:
            continue
        xt = x[t]
        seasonal = bool(any_active[t])
        if seasonal:
            active = active_all[t]
            ph = phase_all[t]
            s_cur = prof[rows, ph] if all_active[t] else np.where(active, prof[rows, ph], 0.0)
            pred = level + s_cur[:, None] * seas_f
            mae_sel = mae if all_active[t] else np.where(active[:, None], mae, mae + seas_inf)
        else:
            pred = level
            mae_sel = mae + seas_inf
        r = xt[:, None] - pred
        absr = np.abs(r)
        scale = np.maximum(mae * _MAE_TO_SD, floor[t][:, None])
        best = mae_sel.argmin(axis=1)
        resid[t] = r[rows, best]
        chose_season[t] = best >= n_plain
        scale_out[t] = scale[rows, best]
        expected[t] = pred[rows, best]
        slow[t] = r[rows, slow_idx[t]]

        lim = HUBER_K * scale
        rc = np.minimum(np.maximum(r, -lim), lim)
        new_level = level + a_row * rc
        new_mae = mae + BETA * (np.minimum(absr, ERR_K * scale) - mae)
        sgn = np.sign(r) * (absr > RUN_K * scale)
        run0, run_sum0, run_mae0 = run, run_sum, run_mae
        cont = sgn * run > 0
        desea = r + level
        run = np.where(cont, run + sgn, sgn)
        run_sum = np.where(cont, run_sum + desea, desea)
        run_mae = np.where(cont, run_mae, mae)
        shift = np.abs(run) >= RUN
        if shift.any():
            shift &= relevels
            new_level = np.where(shift, run_sum / np.maximum(np.abs(run), 1), new_level)
            new_mae = np.where(shift, run_mae, new_mae)
            run = np.where(shift, 0.0, run)
        if dense_rows[t]:
            level, mae = new_level, new_mae
        else:
            v2 = valid_all[t][:, None]
            level = np.where(v2, new_level, level)
            mae = np.where(v2, new_mae, mae)
            # A series without a point at this row keeps its whole state, as when scored alone (where
            # the row does not exist for it): other series' points here must not touch it.
            run = np.where(v2, run, run0)
            run_sum = np.where(v2, run_sum, run_sum0)
            run_mae = np.where(v2, run_mae, run_mae0)
        if seasonal:
            upd = active & valid_all[t]
            prof[rows[upd], ph[upd]] = s_cur[upd] + GAMMA * rc[upd, ref_seas]
    # Rows where a series has no point (padding, a broken sample) carry no forecast of it, whatever the
    # other series of the batch have there (alone such a row is skipped): its running scale downstream
    # must not see them.
    expected[~valid_all] = np.nan
    scale_out[~valid_all] = np.nan
    chose_season &= valid_all
    return Residuals(resid, expected, slow, floor, per_end, regime, chose_season, scale_out)
