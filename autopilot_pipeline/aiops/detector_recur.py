"""A memory of the detector's own alarms: an alarm like several earlier ones is recurring behaviour, not news.

The statistics' reference memories (:mod:`.detector_calib`) forget alarming values on purpose, so a second
incident is measured against normal data. The price: an event that alarms every time it happens (a
fill-and-flush reset whose period drifts away from the learned season, a toggle the forecast misplaces,
bursts of a counter, the edge of a weekly step seen before the weekly season is), never becomes normal and
floods the pager, cycle after cycle. This memory closes that gap from the other side: it keeps one record
per alarm episode (raw: before this floor) and treats a candidate alarm as recurring when at least
:data:`RECUR_ALARMS` earlier episodes of the same kind, on the same side, were at least as extreme:

* level tests (point, short): the deviation from the forecast then (on the test's timescale) at least
  half the deviation now, and the value now either inside the bulk of the series' recent values (its 1st
  to 99th percentile over the last :data:`BULK_SPAN` points: a flush to the usual bottom, a toggle to the
  usual other level) or no further out than the values then, less a quarter of the present deviation;
* drift: the statistic then at least half of what it is now, or its p-value then at most
  :data:`P_FACTOR` times the present one;
* spread: the spread then at least 2/3 of now (more variable) or at most 1.5 times now (flat), or its
  p-value then at most :data:`P_FACTOR` times the present one (the raw spread follows the running scale,
  which creeps: a borderline alarm after every flush must still count as the same event).

A recurring candidate's p-value is floored at the empirical frequency of such events, c / (n + 1) over the
last :data:`ALARM_SPAN` points; with ``c >= 3`` that is above the shipped threshold, so it raises no alarm.
A larger spike, a deeper dip, a drop to zero after dips, or a new kind of event is still news, and so
are the first three of a kind (incidents rarely repeat more often than that in a few days; a pattern
that does is how this series behaves). Causal: a block only consults episodes recorded before it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALARM_SPAN", "BULK_SPAN", "P_FACTOR", "RECUR_ALARMS", "AlarmMemory", "inside_bulk"]

RECUR_ALARMS = 3
"""Earlier alarm episodes at least as extreme that make an alarm recurring (the same count as
:data:`.detector_calib.RECUR` for ordinary values)."""
ALARM_SPAN = 16384
"""Points the memory looks back (11 days of minutes, 8 weeks of hours): 3 events in it give a frequency
of 1.8e-4 or more, above the 1e-4 threshold."""
P_FACTOR = 10.0
"""A windowed test's alarm is like an earlier one whose p-value was at most this many times smaller."""
BULK_SPAN = 512
"""Recent points whose 1st to 99th percentile is the bulk of a series' values."""
_LEVEL, _DRIFT, _SPREAD = 0, 2, 3


class AlarmMemory:
    """Episodes of raw alarms per series: first row, kind (0 level, 2 drift, 3 spread), side, and the most
    extreme value, deviation from the forecast, statistic and smallest p-value of the episode (one (n, 7)
    array per series)."""

    def __init__(self) -> None:
        self.events: dict[int, np.ndarray] = {}

    def add(self, new, row, ser, kind, side, x, r, q, p) -> None:  # noqa: ANN001 - arrays of equal length
        """Record the block's raw alarms, in time order per series: one record per episode (``new`` marks an
        episode's first alarm), holding the episode's most extreme value, deviation and statistic on its side:
        an episode's first point is often its mildest."""
        rec = np.column_stack([row, kind, side, x, r, q, p]).astype(np.float64)
        for j in np.unique(ser):
            at = np.flatnonzero(ser == j)
            ev = self.events.get(int(j))
            rows = [] if ev is None else list(ev)
            for k in at:
                last = rows[-1] if rows else None
                if new[k] or last is None or last[1] != kind[k] or last[2] != side[k]:
                    rows.append(rec[k].copy())
                    continue
                sd = side[k]
                last[3] = sd * max(sd * last[3], sd * x[k])
                last[4] = sd * max(sd * last[4], sd * r[k])
                last[5] = sd * max(sd * last[5], sd * q[k])
                last[6] = min(last[6], p[k])
            self.events[int(j)] = np.array(rows)

    def floor(self, row, ser, kind, side, x, r, q, p, inside) -> np.ndarray:  # noqa: ANN001 - equal lengths
        """p-value floor per candidate: c / (n + 1) when c >= RECUR_ALARMS recorded episodes of the same series,
        kind and side, within ALARM_SPAN points before it, were at least as extreme; else 0. ``inside``: the
        candidate's value lies within the bulk of the series' recent values (then only its deviation from
        the forecast is compared, not its value)."""
        out = np.zeros(len(row))
        for j in np.unique(ser):
            ev = self.events.get(int(j))
            if ev is None or ev.shape[0] < RECUR_ALARMS:
                continue
            at = np.flatnonzero(ser == j)
            e_row, e_kind, e_side, e_x, e_r, e_q, e_p = (c[None, :] for c in ev.T)
            c_row, c_kind, c_side = row[at][:, None], kind[at][:, None], side[at][:, None]
            c_x, c_r, c_q = x[at][:, None], r[at][:, None], q[at][:, None]
            same = (e_kind == c_kind) & (e_side == c_side) & (e_row < c_row) & (e_row >= c_row - ALARM_SPAN)
            s = c_side
            as_far = inside[at][:, None] | (s * e_x >= s * c_x - 0.25 * np.abs(c_r))
            level = as_far & (s * e_r >= 0.5 * s * c_r)
            # The windowed tests: their statistic, or their p-value (scale-free: a borderline alarm that
            # recurs, cycle after cycle, while the running scale creeps) at most ten times smaller than then.
            as_rare = e_p <= P_FACTOR * p[at][:, None]
            drift = as_rare | (s * e_q >= 0.5 * s * c_q)
            spread = as_rare | np.where(s > 0, e_q >= c_q / 1.5, e_q <= 1.5 * c_q)
            like = same & np.where(c_kind == _LEVEL, level, np.where(c_kind == _DRIFT, drift, spread))
            cnt = like.sum(axis=1)
            n = np.minimum(row[at], ALARM_SPAN) + 1.0
            out[at] = np.where(cnt >= RECUR_ALARMS, cnt / n, 0.0)
        return out


def inside_bulk(values: np.ndarray, a: int, ser: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether each candidate value ``x`` (of series ``ser``) lies within the 1st to 99th percentile of its
    series' last :data:`BULK_SPAN` values before row ``a`` (False with fewer than 100 of them)."""
    out = np.zeros(x.size, dtype=bool)
    for j in np.unique(ser):
        mem = values[max(0, a - BULK_SPAN) : a, j]
        mem = mem[~np.isnan(mem)]
        if mem.size < 100:
            continue
        lo, hi = np.quantile(mem, [0.01, 0.99])
        at = ser == j
        out[at] = (x[at] >= lo) & (x[at] <= hi)
    return out
