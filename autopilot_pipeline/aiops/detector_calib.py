"""The calibration half of the detector: residuals -> tail probabilities -> one p-value -> alarm episodes.

Four statistics (three of the forecast residuals, one of the values' own steps) look at four timescales:

==========  ====================================================  =======================================
name        statistic at point t                                  what it sees
==========  ====================================================  =======================================
point       the residual itself                                   spikes, dips, drops to zero, context
short       mean residual over the last 5 points                  short level shifts, small bursts
drift       mean residual of the slowest model, last 64 points    slow leaks, lost or changed season
spread      log mean clipped |step| of values, last 16 points     variance up; flatline (variance gone)
==========  ====================================================  =======================================

Each statistic's predictive distribution is the EMPIRICAL distribution of its own past values over a
bounded memory (conformal style: how many past values were at least as extreme), refreshed block by
block (every 16 to 256 points). Beyond the empirical range, a generalised Pareto tail fitted to the top
exceedances (probability-weighted moments, shape clipped to [0, 0.5]) extrapolates, so early and extreme
points get finite, meaningful p-values. The tail shape is never lighter than 1/k for k effective
exceedances: that is the exact predictive tail of an exponential whose scale was estimated from k points
(a Lomax), so with little history the detector is rightly cautious.

The memory learns what recurs and forgets what was alarming: a statistic's value enters its reference
only if it did not alarm; but a value at least as extreme as ``RECUR`` events' worth of past values
(alarming or not) is recurring, not novel, and its p-value is floored at that empirical frequency. So a
second and a third spike are caught, while bursts, toggles, edges and a new level become normal after a
few occurrences. For the level tests a value at a level the series sat at often in its recent past is not
novel either (:func:`_occupied`), unless a seasonal forecast is in use (then time of day matters).
Last, an alarm like three earlier alarm episodes of the series is recurring, not news
(:mod:`.detector_recur`): the statistics' memories forget alarms, so without it an event that alarms every
time it happens would never become normal.

The one-sided p-values (both sides of each statistic, or only the metric's harmful side) are combined by
Bonferroni: p = min(1, m x smallest), valid whatever their dependence. A point alarms when p < ``ALPHA``;
alarms less than ``QUIET`` points apart form one episode, and only its first point is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autopilot_pipeline.aiops.detector_recur import AlarmMemory, inside_bulk

__all__ = ["ALPHA", "CALM_P", "QUIET", "STATS", "Calibrated", "Stat", "calibrate", "onsets", "statistics"]

ALPHA = 1e-4
"""The shipped threshold on the combined p-value. Chosen from the false-alarm budget, not from labels: at
most one alarm episode per 2,000 normal points needs a per-point rate below 5e-4; 1e-4 leaves a factor of
five for imperfect calibration (window statistics are correlated, tails are extrapolated)."""
QUIET = 64
"""Alarms closer than this many points belong to one episode (the longest statistic window) ..."""
CALM_P, CALM_RUN = 0.01, 8
"""... unless the series was calm (p above 1 %) for 8 points (half the spread window) in between."""
RECUR = 3
"""Independent past occurrences that make an extreme value recurring (normal) rather than novel."""
TAIL_FRAC, K_MIN, K_MAX = 0.05, 8, 200  # exceedances used for the tail: 5 % of the memory, 8 to 200
MIN_REF = 16  # reference values a statistic needs before it scores
_GRID = 33  # quantiles kept for the body of the distribution


@dataclass(frozen=True)
class Stat:
    """One statistic: its window, how its memory is thinned and how long the memory is (in points)."""

    name: str
    window: int
    thin: int
    span: int


STATS = (
    Stat("point", 1, 1, 2048),
    Stat("short", 5, 2, 2048),
    Stat("drift", 64, 8, 4096),
    Stat("spread", 16, 4, 2048),
)


@dataclass
class Calibrated:
    """Per-point outputs of :func:`calibrate`, arrays of shape (time, series)."""

    p: np.ndarray  # combined p-value (1 where not scored)
    stat: np.ndarray  # index into STATS of the most significant statistic
    side: np.ndarray  # +1 above / -1 below for that statistic
    alarm: np.ndarray  # p < ALPHA
    onset: np.ndarray  # first alarm of an episode


def _rolling_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Mean of the last ``w`` rows (fewer at the start); NaN rows (padding) stay NaN."""
    if w == 1:
        return a.copy()
    z = np.nan_to_num(a)
    c = np.vstack([np.zeros((1, a.shape[1])), np.cumsum(z, axis=0)])
    i = np.arange(a.shape[0])
    lo = np.maximum(i + 1 - w, 0)
    out = (c[i + 1] - c[lo]) / (i + 1 - lo)[:, None]
    return np.where(np.isnan(a), np.nan, out)


def statistics(
    resid: np.ndarray, slow_resid: np.ndarray, floor: np.ndarray, scale: np.ndarray, values: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The four statistics of :data:`STATS`, each (time x series), and the unit of the first two (the
    residual's running scale), for :func:`calibrate`.

    The spread is that of the series itself, not of a forecast's errors (a better forecast is not a
    flatline): the mean absolute step between consecutive values, each clipped at twice the forecaster's
    running scale (a level step or a spike is a level event, not spread)."""
    step = np.zeros(values.shape)
    step[1:] = np.abs(np.diff(values, axis=0))
    step = np.where(np.isnan(values), np.nan, np.nan_to_num(step))
    # The spread is returned raw (mean step); :func:`calibrate` takes its log with the floor in force at
    # each block, for the reference and the new points alike: the floor shrinks when a smaller step is first
    # seen (a counter's first step of 1), which must not make every later flat stretch look novel.
    spread = _rolling_mean(np.minimum(step, 2 * scale), STATS[3].window)
    # The level tests read the residual in units of the forecaster's running scale (known before the
    # point): quiet nights and busy days, or a forecast still settling, then share one distribution.
    # The scale may not drop below half its own running mean: a quiet stretch does not make the next
    # ordinary burst look enormous.
    sc = np.nan_to_num(scale)
    seen = np.cumsum(~np.isnan(scale), axis=0)
    long_run = np.cumsum(sc, axis=0) / np.maximum(seen, 1)
    unit = np.maximum(np.maximum(scale, 0.5 * long_run), floor)
    z = resid / unit
    return [z, _rolling_mean(z, STATS[1].window), _rolling_mean(slow_resid, STATS[2].window), spread], unit


def _oriented(srt: np.ndarray, n: np.ndarray, side: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """From a sorted reference (valid values first, ``n`` per row): its ``depth`` most extreme values on
    ``side`` (+1 the largest, -1 the smallest, negated) in descending order, and ``_GRID`` quantiles of the
    values so oriented, ascending. Working on the oriented values lets one tail formula serve both sides."""
    width = srt.shape[1]
    j = np.arange(depth)[None, :]
    nm1 = (n - 1)[:, None]
    f = np.linspace(0.0, 1.0, _GRID)[None, :]
    if side > 0:
        top = np.take_along_axis(srt, np.clip(nm1 - j, 0, width - 1), axis=1)
        grid = np.take_along_axis(srt, np.clip(np.rint(f * nm1).astype(np.int64), 0, width - 1), axis=1)
        return top, grid
    top = -np.take_along_axis(srt, np.clip(np.broadcast_to(j, (srt.shape[0], depth)), 0, width - 1), axis=1)
    grid = -np.take_along_axis(srt, np.clip(np.rint((1 - f) * nm1).astype(np.int64), 0, width - 1), axis=1)
    return top, grid


def _tail_p(
    top: np.ndarray, grid: np.ndarray, n: np.ndarray, q: np.ndarray, floor: np.ndarray, eff: float
) -> np.ndarray:
    """P(next value >= q) (series x block) from the oriented parts of a reference (:func:`_oriented`).

    Beyond u, the (k+1)-th largest value, a generalised Pareto tail (probability-weighted moments, shape in
    [0, 0.5], never lighter than 1 / effective k); below it the empirical distribution, interpolated
    between the stored quantiles. ``floor`` (series,) is the smallest tail scale, ``eff`` the share of
    reference values that are effectively independent."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        nf = n.astype(np.float64)
        k = np.clip(np.ceil(TAIL_FRAC * nf), K_MIN, K_MAX).astype(np.int64)
        k = np.minimum(k, np.maximum(n - 1, 1))
        kf = k.astype(np.float64)
        kmax = int(k.max())
        j = np.arange(kmax)[None, :]
        in_k = j < k[:, None]
        u = np.take_along_axis(top, k[:, None], axis=1)[:, 0]
        # The moments of each series' own k exceedances, summed over exactly k terms: a row sum pairs its
        # terms by the row's width, so zeros beyond a series' k (the widest k of the batch) would change
        # its last bit with the series beside it. One sum per distinct k; alone, as it always was.
        a0, a1 = np.empty(k.size), np.empty(k.size)
        for kk in np.unique(k).tolist():
            at = np.flatnonzero(k == kk) if kk != kmax or k.min() != kmax else slice(None)
            e = top[at, :kk] - u[at, None]
            a0[at] = e.sum(axis=1) / kf[at]
            a1[at] = (e * j[:, :kk] / np.maximum(kf[at] - 1, 1)[:, None]).sum(axis=1) / kf[at]
        den = a0 - 2 * a1
        xi = np.where(den > 0, 2 - a0 / den, np.where(a0 > 0, 0.5, 0.0))  # a0 = 0: no spread seen at all
        xi = np.clip(np.nan_to_num(xi, nan=0.0), 0.0, 0.5)
        sigma = np.maximum(a0 * (1 - xi), floor)
        xi = np.maximum(xi, 1.0 / np.maximum(kf * eff, 1.0))
        # The chance to pass u is what the memory shows: values clearly above u (ties at u, as in counts
        # or a constant stretch, do not count, nor rounding noise below the floor), plus the new point.
        beyond = ((top[:, :kmax] > (u + floor)[:, None]) & in_k).sum(axis=1) + 1.0
        # The tail only where it applies (a few % of the points): gather, compute, scatter.
        rs, cs = np.nonzero(q > u[:, None])
        qt = q[rs, cs]
        x_r = xi[rs]
        tail = (np.minimum(beyond, kf) / (nf + 1))[rs] * np.exp(
            -np.log1p(x_r * (qt - u[rs]) / sigma[rs]) / x_r
        )
        # A value as large as c of the largest past values cannot be rarer than c / (n + 1).
        w = min(kmax, 8)
        seen = ((top[rs, :w] >= qt[:, None]) & in_k[rs, :w]).sum(axis=1)
        tail = np.maximum(tail, seen / (nf + 1)[rs])
        # Body: where q falls among the quantiles, then linear interpolation between them.
        below = np.empty(q.shape, dtype=np.int64)
        for r in range(q.shape[0]):
            below[r] = np.searchsorted(grid[r], q[r], side="left")
        f = np.linspace(0.0, 1.0, _GRID)
        lo_i = np.clip(below - 1, 0, _GRID - 1)
        hi_i = np.clip(below, 0, _GRID - 1)
        flat = grid.ravel()
        base = (np.arange(q.shape[0]) * _GRID)[:, None]
        g_lo = flat[base + lo_i]
        g_hi = flat[base + hi_i]
        frac = np.where(g_hi > g_lo, (q - g_lo) / (g_hi - g_lo), 1.0)
        cdf = np.where(below == 0, 0.0, f[lo_i] + np.clip(frac, 0, 1) * (f[hi_i] - f[lo_i]))
        body = np.maximum(1.0 - cdf * nf[:, None] / (nf + 1)[:, None], (kf / (nf + 1))[:, None])
        body[rs, cs] = np.minimum(tail, body[rs, cs])
        return body


def _recurring(top: np.ndarray, n: np.ndarray, extra: np.ndarray, c: int) -> np.ndarray:
    """The c-th largest of the oriented reference (its ``top`` values) together with ``extra``, the
    excluded values (oriented, -inf where none)."""
    j = np.arange(c)[None, :]
    head = np.where(j < n[:, None], top[:, :c], -np.inf)
    both = np.concatenate([head, extra], axis=1)
    return -np.partition(-both, c - 1, axis=1)[:, c - 1]


def _side_p(
    values: np.ndarray,
    excluded: np.ndarray,
    rows: np.ndarray,
    q: np.ndarray,
    floor: np.ndarray,
    st: Stat,
    since: np.ndarray,
    offset: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower p-values of the block's values ``q`` (series x block) against the reference rows;
    per series only rows whose window lies after ``since`` (the start of the current season) count.
    ``offset`` (series,), when given, means the statistic is log(value + offset) (``q`` already is)."""
    ref = values[rows].T
    if offset is not None:
        ref = np.log(ref + offset[:, None])
    exc = excluded[rows].T
    ok = ~np.isnan(ref) & (rows[None, :] >= (since + st.window - 1)[:, None])
    strict = ok & ~exc
    srt = np.sort(np.where(strict, ref, np.inf), axis=1)
    n = strict.sum(axis=1)
    n_all = ok.sum(axis=1).astype(np.float64)
    eff = min(1.0, np.sqrt(st.thin / st.window))
    c = max(1, int(np.ceil(RECUR * st.window / st.thin)))
    floor_p = (c / (n_all + 1))[:, None]
    # Excluded values are few: keep only the memory rows where some series has one.
    gone = ok & exc
    cols = np.flatnonzero(gone.any(axis=0))
    extra = np.where(gone[:, cols], ref[:, cols], np.nan)
    depth = max(min(K_MAX, int(np.ceil(TAIL_FRAC * n.max()))) + 1, K_MIN + 1, c)
    out = []
    for side in (1, -1):
        top, grid = _oriented(srt, n, side, depth)
        oq = side * q
        p = _tail_p(top, grid, n, oq, floor, eff)
        rec = _recurring(top, n, np.nan_to_num(side * extra, nan=-np.inf), c)
        out.append(np.where(oq <= rec[:, None], np.maximum(p, floor_p), p))
    few = (n < MIN_REF)[:, None] | np.isnan(q)
    return np.where(few, 1.0, out[0]), np.where(few, 1.0, out[1])


OCC_SPAN = 512  # recent points whose values make a level "occupied"
OCC_SHARE, OCC_MIN = 0.02, 10  # a level is recurring when at least 2 % (and 10) of them sat there


def _occupied(values: np.ndarray, alarm: np.ndarray, floor: np.ndarray, a: int, b: int) -> np.ndarray:
    """Share of remembered non-alarming values near each value of the block (series x block), 0 where
    that share is below ``OCC_SHARE``: the p-value floor for a value at a level the series sits at often.

    "Near" is within max(one quantum, 5 % of the interquartile range). This is what makes the other level
    of a toggle, the zero of a bursty counter or the bottom of a sawtooth normal however abrupt the step
    to it, while a level never or rarely occupied (an outage's zero, a spike's height) stays novel."""
    lo = max(0, a - OCC_SPAN)
    mem = values[lo:a].T
    keep = ~np.isnan(mem) & ~alarm[lo:a].T
    srt = np.sort(np.where(keep, mem, np.inf), axis=1)
    n = keep.sum(axis=1)
    q = values[a:b].T
    out = np.zeros(q.shape)
    for j in np.flatnonzero(n >= OCC_MIN):
        r = srt[j, : n[j]]
        iqr = r[(3 * n[j]) // 4] - r[n[j] // 4]
        h = max(2 * floor[a - 1, j], 0.05 * iqr)
        cnt = np.searchsorted(r, q[j] + h, side="right") - np.searchsorted(r, q[j] - h, side="left")
        share = cnt / (n[j] + 1.0)
        out[j] = np.where((cnt >= OCC_MIN) & (share >= OCC_SHARE), share, 0.0)
    return out


JUMP_SPAN = 2048  # recent points whose values and forecast-error jumps make a point "seen before"


def _seen_before(
    values: np.ndarray,
    jump: np.ndarray,
    a: int,
    b: int,
    since: np.ndarray | None = None,
    alarm: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower p-value floors (series x block) for a point seen before in both of its contexts.

    A point is not novel when, in the last ``JUMP_SPAN`` points, at least ``RECUR`` values were at least as
    extreme on its side AND at least ``RECUR`` jumps of the forecast error (``jump``: r_t - r_{t-1}) were at
    least as large (either sign): a sawtooth's flush or a toggle that the forecast misplaces in time, a
    bursty counter's burst no larger than several before it. The floor is the rarer of the two empirical
    frequencies. Raw values, not scaled ones: a quiet stretch shrinks the forecaster's scale, and the next
    ordinary burst must not look new because of it. A spike on a random walk or in a season has a new jump;
    a value beyond the recent range is new; both stay fully sensitive. Jumps count only since ``since``
    (series,), the start of the forecasting regime in force: a forecast still without its season makes
    large errors that say nothing about the seasonal one. Only the series in ``cols`` are looked at (the
    others get no floor): the caller passes those where the floor can matter."""
    n_ser = values.shape[1]
    cols = np.arange(n_ser) if cols is None else cols
    up_all, down_all = np.zeros((n_ser, b - a)), np.zeros((n_ser, b - a))
    if cols.size == 0:
        return up_all, down_all
    values, jump = values[:, cols], jump[:, cols]
    since = None if since is None else since[cols]
    alarm = None if alarm is None else alarm[:, cols]
    lo = max(0, a - JUMP_SPAN)
    mem_v = values[lo:a].T
    mem_j = np.abs(jump[lo:a].T)
    ok_v = ~np.isnan(mem_v)
    ok_j = ~np.isnan(mem_j)
    if since is not None:
        ok_j &= np.arange(lo, a)[None, :] > since[:, None]
    if alarm is not None:
        # One incident is one occurrence: the jumps in the QUIET points after an alarm belong to its episode
        # and do not count (entering, re-levelling and leaving a dip must not make the next dip "seen").
        rows = np.arange(lo, a)
        last = np.maximum.accumulate(np.where(alarm[lo:a].T, rows[None, :], -(10**9)), axis=1)
        before = np.full(last.shape, -(10**9))
        before[:, 1:] = last[:, :-1]
        ok_j &= rows[None, :] - before > QUIET
    sv = np.sort(np.where(ok_v, mem_v, np.inf), axis=1)
    sj = np.sort(np.where(ok_j, mem_j, np.inf), axis=1)
    nv, nj = ok_v.sum(axis=1), ok_j.sum(axis=1)
    qv = values[a:b].T
    qj = np.abs(jump[a:b].T)
    up, down = np.zeros(qv.shape), np.zeros(qv.shape)
    for j in np.flatnonzero((nv >= 16 * RECUR) & (nj >= 16 * RECUR)):
        cj = nj[j] - np.searchsorted(sj[j, : nj[j]], qj[j], side="left")
        c_up = nv[j] - np.searchsorted(sv[j, : nv[j]], qv[j], side="left")
        c_dn = np.searchsorted(sv[j, : nv[j]], qv[j], side="right")
        fj = np.where(cj >= RECUR, cj / (nj[j] + 1.0), 0.0)
        up[j] = np.where(c_up >= RECUR, np.minimum(fj, c_up / (nv[j] + 1.0)), 0.0)
        down[j] = np.where(c_dn >= RECUR, np.minimum(fj, c_dn / (nv[j] + 1.0)), 0.0)
    bad = np.isnan(qv) | np.isnan(qj)
    up_all[cols], down_all[cols] = np.where(bad, 0.0, up), np.where(bad, 0.0, down)
    return up_all, down_all


def onsets(
    alarm: np.ndarray, calm: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None, row0: int = 0
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """First alarms of episodes in ``alarm`` (time x series). An alarm starts a new episode when the
    previous one is more than :data:`QUIET` rows back, or when the series has been calm (``calm``: p above
    :data:`CALM_P`) for :data:`CALM_RUN` rows since: a new incident hours after the last one is news, a
    statistic still settling after it is not. ``state`` carries (previous alarm row, calm run) per series
    across calls (rows numbered from ``row0``)."""
    t_len, n_ser = alarm.shape
    prev, run = (np.full(n_ser, -(10**9)), np.zeros(n_ser, dtype=np.int64)) if state is None else state
    prev, run = prev.copy(), run.copy()
    out = np.zeros(alarm.shape, dtype=bool)
    for t in range(t_len):
        hit = alarm[t]
        if hit.any():
            out[t] = hit & ((row0 + t - prev > QUIET) | (run >= CALM_RUN))
            prev = np.where(hit, row0 + t, prev)
        run = np.where(calm[t] & ~hit, run + 1, 0)
    return out, (prev, run)


def _blocks(start: int, t_len: int, cuts: np.ndarray) -> list[tuple[int, int]]:
    """Refresh points: every 16 to 256 rows (half the history since the last regime change), and at every
    row in ``cuts`` (where the forecasting regime of the series so scheduled changes, so a block never
    straddles two)."""
    out, a = [], start
    cuts = np.sort(cuts[cuts > start])
    while a < t_len:
        prev = cuts[np.searchsorted(cuts, a, side="right") - 1] if cuts.size and cuts[0] <= a else 0
        b = min(t_len, a + int(np.clip((a - prev) // 2, 16, 256)))
        nxt = cuts[np.searchsorted(cuts, a, side="right") :]
        if nxt.size and nxt[0] < b:
            b = int(nxt[0])
        out.append((a, b))
        a = b
    return out


def _schedules(regime: np.ndarray | None, valid: np.ndarray, n0: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The series grouped by refresh schedule: (columns, their regime changes after ``n0``).

    A series' reference memories are refreshed at its OWN regime changes only (and every 16 to 256 rows
    after them, :func:`_blocks`), never at another series': its scores must be the same whether it is
    scored alone or with any other series. Regime changes happen only at the season checkpoints, so a
    batch holds few distinct schedules. A series' rows end at its last valid point; changes in the
    padding below it are no part of its schedule."""
    t_len, n_ser = valid.shape
    ends = np.where(valid.any(axis=0), t_len - np.argmax(valid[::-1], axis=0), 0)
    groups: dict[tuple[int, ...], list[int]] = {}
    for j in range(n_ser):
        cuts = () if regime is None else tuple(int(c) for c in np.unique(regime[: ends[j], j]) if c > n0)
        groups.setdefault(cuts, []).append(j)
    # Series that share their latest regime change sit side by side: after it their blocks coincide.
    order = sorted(groups, key=lambda c: c[::-1])
    return [(np.array(groups[c]), np.array(c, dtype=np.int64)) for c in order]


@dataclass
class _Run:
    """The inputs of :func:`calibrate` (columns in schedule order) and what it carries from block to block."""

    stats: list[np.ndarray]
    floor: np.ndarray
    floors: list[np.ndarray]
    sides: list[tuple[int, int]]
    regime: np.ndarray | None
    values: np.ndarray | None
    seasonal: np.ndarray | None
    alpha: float
    unit: np.ndarray
    jump: np.ndarray | None
    p_out: np.ndarray
    which: np.ndarray
    excluded: list[np.ndarray]
    alarm: np.ndarray
    onset: np.ndarray
    prev: np.ndarray  # the state of :func:`onsets` per series
    run: np.ndarray
    last_raw: np.ndarray
    memory: AlarmMemory | None


def calibrate(
    stats: list[np.ndarray],
    floor: np.ndarray,
    n0: int,
    sides: list[tuple[int, int]],
    regime: np.ndarray | None = None,
    values: np.ndarray | None = None,
    seasonal: np.ndarray | None = None,
    alpha: float = ALPHA,
    unit: np.ndarray | None = None,
    jump: np.ndarray | None = None,
) -> Calibrated:
    """Combined p-values and alarm episodes from the statistics (time x series each).

    ``sides`` lists the one-sided tests to use as (statistic index, +1 upper / -1 lower); ``floor``
    (time x series) is the smallest meaningful residual, used as the smallest tail scale; ``regime``
    (time x series) the row where the current forecasting regime (season) began: older residuals come
    from other models and leave the memory. ``values`` (time x series), when given, enables the memory
    of recurring levels for series without a season in force (``seasonal``): see :func:`_occupied`.
    ``unit`` (time x series) is the scale the point and short statistics are expressed in. ``jump`` (time
    x series), with ``values``, enables the floor of points seen before (:func:`_seen_before`).

    Each series is refreshed on its own schedule (:func:`_schedules`), so its results do not depend on
    the other series of the batch; a block is computed for all the series whose schedules have it at
    once (columns reordered so that they are one slice: views, no copies)."""
    t_len, n_ser = stats[0].shape
    groups = _schedules(regime, ~np.isnan(values if values is not None else stats[0]), n0)
    perm = np.concatenate([c for c, _ in groups])
    same = bool((perm == np.arange(n_ser)).all())

    def ordered(a: np.ndarray | None) -> np.ndarray | None:
        return a if a is None or same else a[:, perm]

    floor = ordered(floor)
    # Smallest tail scale: a tenth of the data's quantum (the engine's floor is half of it), so a memory
    # that never moved gives a finite p-value to the first change of one quantum: about e^-10 / (n + 1).
    unit = np.ones_like(floor) if unit is None else ordered(unit)
    r = _Run(
        stats=[ordered(s) for s in stats],
        floor=floor,
        floors=[floor / 5 / unit, floor / 5 / unit, floor / 5, np.full_like(floor, 0.02)],
        sides=sides,
        regime=ordered(regime),
        values=ordered(values),
        seasonal=ordered(seasonal),
        alpha=alpha,
        unit=unit,
        jump=ordered(jump),
        p_out=np.ones((t_len, n_ser)),
        which=np.zeros((t_len, n_ser), dtype=np.int64),
        excluded=[np.zeros((t_len, n_ser), dtype=bool) for _ in STATS],
        alarm=np.zeros((t_len, n_ser), dtype=bool),
        onset=np.zeros((t_len, n_ser), dtype=bool),
        prev=np.full(n_ser, -(10**9)),
        run=np.zeros(n_ser, dtype=np.int64),
        last_raw=np.full(n_ser, -(10**9)),
        memory=AlarmMemory() if values is not None else None,
    )
    bounds = np.cumsum([0] + [c.size for c, _ in groups])
    todo: dict[tuple[int, int], list[int]] = {}
    for g, (_, cuts) in enumerate(groups):
        for blk in _blocks(n0, t_len, cuts):
            todo.setdefault(blk, []).append(g)
    for (a, b), gs in sorted(todo.items()):
        first = gs[0]
        for k, g in enumerate(gs):  # runs of neighbouring groups are one slice of columns
            if k + 1 == len(gs) or gs[k + 1] != g + 1:
                _block(r, a, b, slice(int(bounds[first]), int(bounds[g + 1])))
                if k + 1 < len(gs):
                    first = gs[k + 1]
    idx = np.array([s for s, _ in sides])[r.which]
    sgn = np.array([d for _, d in sides])[r.which]
    out = Calibrated(r.p_out, idx, sgn, r.alarm, r.onset)
    if not same:
        back = np.argsort(perm)
        out = Calibrated(*(x[:, back] for x in (out.p, out.stat, out.side, out.alarm, out.onset)))
    return out


def _block(r: _Run, a: int, b: int, cs: slice) -> None:
    """Score rows a..b-1 of the series in columns ``cs`` against their memories of the rows before a."""
    stats = [s[:, cs] for s in r.stats]
    excluded = [e[:, cs] for e in r.excluded]
    floors = [f[:, cs] for f in r.floors]
    floor, unit, alarm, p_out = r.floor[:, cs], r.unit[:, cs], r.alarm[:, cs], r.p_out[:, cs]
    regime = None if r.regime is None else r.regime[:, cs]
    values = None if r.values is None else r.values[:, cs]
    seasonal = None if r.seasonal is None else r.seasonal[:, cs]
    jump = None if r.jump is None else r.jump[:, cs]
    sides, alpha, m = r.sides, r.alpha, len(r.sides)
    n_ser = cs.stop - cs.start
    side_p = []
    point_unfloored = None
    for i, st in enumerate(STATS):
        lo = max(st.window - 1, 2, a - st.span)
        rows = np.arange(lo, a)
        rows = rows[rows % st.thin == 0]
        q = stats[i][a:b].T
        fl = floors[i][max(a - 1, 0)]
        if rows.size == 0:
            side_p.append((np.ones_like(q), np.ones_like(q)))
            continue
        # Only the drift follows a model that changes with the season (the slowest, plain or seasonal).
        since = regime[a] if regime is not None and i == 2 else np.zeros(n_ser, dtype=np.int64)
        offset = None
        if i == 3:  # the spread: log of the mean step plus the floor in force now (see statistics)
            offset = floor[max(a - 1, 0)]
            q = np.log(q + offset[:, None])
        side_p.append(_side_p(stats[i], excluded[i], rows, q, fl, st, since, offset))
    if values is not None:
        occ = _occupied(values, alarm, floor, a, b)
        if seasonal is not None:
            occ = np.where(seasonal[a:b].T, 0.0, occ)
        for i in (0, 1):  # the level tests: a value the series sits at often is not a novel level
            side_p[i] = (np.maximum(side_p[i][0], occ), np.maximum(side_p[i][1], occ))
        if jump is not None:  # the point test: a value and a jump both seen several times are not news
            since_j = None if regime is None else regime[a]
            # Only where the point test comes near to mattering: the floor applies to a point whose
            # own m x p is below CALM_P (alarms and calm both need that; above it the floor would only
            # raise a p-value already above 1 %), so it is computed for about a third of the blocks.
            up_low = side_p[0][0] * m < CALM_P
            dn_low = side_p[0][1] * m < CALM_P
            low = (up_low | dn_low).any(axis=1)
            f_up, f_dn = _seen_before(values, jump, a, b, since_j, alarm, np.flatnonzero(low))
            f_up, f_dn = np.where(up_low, f_up, 0.0), np.where(dn_low, f_dn, 0.0)
            point_unfloored = side_p[0]
            side_p[0] = (np.maximum(side_p[0][0], f_up), np.maximum(side_p[0][1], f_dn))
    ps = np.stack([side_p[i][0] if s > 0 else side_p[i][1] for i, s in sides])  # (m, S, B)
    best = np.argmin(ps, axis=0)
    p_comb = np.minimum(1.0, m * np.take_along_axis(ps, best[None], axis=0)[0])
    if r.memory is not None:
        p_prev = p_out[max(a - CALM_RUN, 0) : a]
        p_prev = np.vstack([np.ones((CALM_RUN - p_prev.shape[0], n_ser)), p_prev])
        last_raw = r.last_raw[cs]  # a view: the updates land in the run's state
        p_comb = _recurring_alarms(
            r.memory, last_raw, p_prev, p_comb, best, sides, stats, unit, values, a, alpha, cs.start
        )
    p_out[a:b] = p_comb.T
    # The reason names the shortest timescale that alarms (a spike is a spike, though its 5-point mean
    # may be rarer still), else the most significant test.
    hit = m * ps < alpha
    r.which[a:b, cs] = np.where(hit.any(axis=0), np.argmax(hit, axis=0), best).T
    for i in range(len(STATS)):
        own = [k for k, (si, _s) in enumerate(sides) if si == i]
        if own:
            p_own = ps[own]
            if i == 0 and point_unfloored is not None:
                # The point test's memory forgets an extreme point even when it was not news (seen
                # before): the floor decides the alarm, the memory stays that of ordinary points, so
                # a second incident like an earlier one is measured against normal data.
                p_own = np.stack([point_unfloored[0] if sides[k][1] > 0 else point_unfloored[1] for k in own])
            excluded[i][a:b] = (m * p_own.min(axis=0) < alpha).T
    al = (p_comb < alpha).T
    alarm[a:b] = al
    r.onset[a:b, cs], (r.prev[cs], r.run[cs]) = onsets(al, (p_comb > CALM_P).T, (r.prev[cs], r.run[cs]), a)


def _recurring_alarms(
    memory: AlarmMemory,
    last_raw: np.ndarray,
    p_prev: np.ndarray,
    p_comb: np.ndarray,
    best: np.ndarray,
    sides: list[tuple[int, int]],
    stats: list[np.ndarray],
    unit: np.ndarray,
    values: np.ndarray,
    a: int,
    alpha: float,
    base: int = 0,
) -> np.ndarray:
    """Floor the block's candidate alarms (``p_comb`` series x block) that are like several earlier alarm
    episodes (:mod:`.detector_recur`), then record the block's raw episodes (the rule of :func:`onsets`
    on the unfloored p-values; ``last_raw`` (series,) the last raw alarm row, updated here, ``p_prev``
    (CALM_RUN x series) the p-values of the rows before the block; ``base`` the memory's number of the
    first series). Returns the floored p-values."""
    cs, cb = np.nonzero(p_comb < alpha)  # series-major, rows ascending within a series
    if cs.size == 0:
        return p_comb
    k = best[cs, cb]
    stat_i = np.array([s for s, _ in sides])[k]
    side = np.array([d for _, d in sides])[k]
    rows = a + cb
    q = np.empty(cs.size)
    for i in np.unique(stat_i):
        sel = stat_i == i
        q[sel] = stats[i][rows[sel], cs[sel]]
    kind = np.where(stat_i <= 1, 0, stat_i)
    x = values[rows, cs]
    # The deviation from the forecast on the test's own timescale (one point, or the 5-point mean).
    r = np.where(stat_i == 1, q, stats[0][rows, cs]) * unit[rows, cs]
    p_c = p_comb[cs, cb]
    fl = memory.floor(rows, cs + base, kind, side, x, r, q, p_c, inside_bulk(values, a, cs, x))
    out = p_comb.copy()
    out[cs, cb] = np.maximum(p_comb[cs, cb], fl)
    # Raw episodes: more than QUIET rows after the previous raw alarm, or after CALM_RUN calm rows.
    first = np.r_[True, cs[1:] != cs[:-1]]
    prev = np.where(first, last_raw[cs], np.r_[0, rows[:-1]])
    calm = np.vstack([p_prev, p_comb.T]) > CALM_P  # rows a - CALM_RUN .. b - 1
    run = np.vstack([np.zeros((1, calm.shape[1])), np.cumsum(calm, axis=0)])
    calm_before = run[cb + CALM_RUN, cs] - run[cb, cs] == CALM_RUN
    new = (rows - prev > QUIET) | calm_before
    last_raw[cs] = rows  # the last write per series is its latest row
    memory.add(new, rows, cs + base, kind, side, x, r, q, p_c)
    return out
