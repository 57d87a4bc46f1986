"""The saving an applied index realized: the mean time of the queries it serves in pg_stat_statements
windows before and after it existed, beside the saving its advice predicted. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Realized:
    """Before/after of one applied index. ``status``: measuring (fewer than the minimum calls after it),
    no_baseline (too few before, or no query seen on both sides), measured."""

    status: str
    calls_before: int
    mean_ms_before: float | None
    calls_after: int
    mean_ms_after: float | None
    saved_ms: float | None = None
    saving_pct: float | None = None
    queries: list[dict[str, Any]] = field(default_factory=list)


def _mean(calls: int, total: float) -> float | None:
    return total / calls if calls > 0 else None


def realized_saving(
    before: Mapping[str, tuple[int, float]], after: Mapping[str, tuple[int, float]], min_calls: int
) -> Realized:
    """Compare per fingerprint ``(calls, total ms)`` before and after.

    The saving counts only the calls made after the index, each at its own query's change of mean:
    ``Σ calls_after × (mean_before - mean_after)``, so a shift in the mix of queries is not a saving; the
    percentage is that over what the same calls would have cost before. With fewer than ``min_calls``
    calls after (or before) there is no number yet, only the status.
    """
    cb = sum(c for c, _ in before.values())
    ca = sum(c for c, _ in after.values())
    mb = _mean(cb, sum(t for _, t in before.values()))
    ma = _mean(ca, sum(t for _, t in after.values()))
    queries = []
    saved = baseline = 0.0
    both = 0
    for fp in sorted(set(before) | set(after)):
        b_calls, b_total = before.get(fp, (0, 0.0))
        a_calls, a_total = after.get(fp, (0, 0.0))
        b_mean, a_mean = _mean(b_calls, b_total), _mean(a_calls, a_total)
        queries.append(
            {
                "fingerprint": fp,
                "calls_before": b_calls,
                "mean_ms_before": _round(b_mean),
                "calls_after": a_calls,
                "mean_ms_after": _round(a_mean),
            }
        )
        if b_mean is not None and a_mean is not None:
            both += a_calls
            saved += a_calls * (b_mean - a_mean)
            baseline += a_calls * b_mean
    if ca < min_calls:
        return Realized("measuring", cb, mb, ca, ma, queries=queries)
    if cb < min_calls or both < min_calls or baseline <= 0:
        return Realized("no_baseline", cb, mb, ca, ma, queries=queries)
    return Realized("measured", cb, mb, ca, ma, saved, 100.0 * saved / baseline, queries)


def _round(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


_LABELS = {
    "measuring": "measuring (too few calls since it was applied)",
    "no_baseline": "no baseline (too few calls before it was applied)",
    "measured": "measured",
    "no_queries": "no query seen runs through it",
}


def savings_report(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored realized savings in the ``optimize_system`` JSON's camelCase, predicted beside realized."""
    out = []
    for r in rows:
        out.append(
            {
                "index": f"{r['schema_name']}.{r['index_name']}",
                "table": r["table_name"],
                "source": r["source"],
                "recommendationKey": r.get("recommendation_key"),
                "appliedAt": _iso(r.get("applied_before")),
                "status": r["status"],
                "statusText": _LABELS.get(r["status"], r["status"]),
                "queries": len(r.get("fingerprints") or []),
                "predictedSavingPct": _round(r.get("predicted_saving_pct"), 1),
                "predictedSavedMs": _round(r.get("predicted_saved_ms"), 1),
                "realizedSavingPct": _round(r.get("realized_saving_pct"), 1),
                "realizedSavedMs": _round(r.get("realized_saved_ms"), 1),
                "callsBefore": r.get("calls_before"),
                "meanMsBefore": _round(r.get("mean_ms_before")),
                "callsAfter": r.get("calls_after"),
                "meanMsAfter": _round(r.get("mean_ms_after")),
            }
        )
    return out


def savings_lines(report: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per applied index for the terminal: predicted vs realized."""
    lines = []
    for s in report:
        predicted = (
            "no prediction"
            if s["predictedSavingPct"] is None
            else f"predicted {-s['predictedSavingPct']:+g} %"
        )
        if s["status"] == "measured":
            realized = (
                f"realized {-s['realizedSavingPct']:+g} % (mean {s['meanMsBefore']:.2f} -> "
                f"{s['meanMsAfter']:.2f} ms over {s['callsAfter']} calls)"
            )
        else:
            realized = s["statusText"]
        lines.append(f"{s['index']} ({s['source']}, {s['queries']} queries): {predicted}; {realized}")
    return lines


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
