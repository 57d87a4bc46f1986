"""The seed's ``predict_failures``: per component and metric, the 24-hour forecast, the risk of crossing its
failure threshold (:mod:`aiops.risk`: detected seasons, empirical error paths, calibration) and what to do
about it, in the seed's JSON shape. Joins the forecast model and the risk model, so neither imports the other."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime

import polars as pl

from autopilot_pipeline.aiops.forecast import (
    Direction,
    bounds_for,
    hourly,
    threshold_for,
)
from autopilot_pipeline.aiops.metric_kinds import metric_kind
from autopilot_pipeline.aiops.parallel import process_map, split_series, worth_a_pool
from autopilot_pipeline.aiops.risk import assess

#: Fewest series worth the worker processes: a fit costs 10-100 ms, starting a worker 1-2 s.
POOL_MIN_SERIES = 200

_RECOMMENDATIONS = {
    "uptime": [
        "Monitor {c} closely",
        "Review recent changes",
        "Prepare rollback plan",
        "Check resource utilization",
    ],
    "latency": [
        "Review slow queries and recent deployments for {c}",
        "Check database and cache load",
        "Consider scaling {c} before peak hours",
    ],
    "error_rate": ["Inspect recent errors for {c}", "Review recent changes", "Prepare rollback plan"],
    "error_count": ["Inspect recent errors for {c}", "Review recent changes", "Prepare rollback plan"],
    "custom": ["Check resource utilization of {c}", "Plan capacity before the threshold is reached"],
}


def predict_failures(
    frame: pl.DataFrame,
    *,
    thresholds: Mapping[str, tuple[Direction, float]] | None = None,
    horizon_hours: int = 24,
    n_paths: int = 1000,
    seed: int = 0,
    min_hours: int = 6,
    include_forecast: bool = True,
    workers: int = 1,
    min_pool_series: int = POOL_MIN_SERIES,
) -> list[dict]:
    """Failure predictions per (component, metric) in the seed's shape, most likely first.

    ``frame`` has component, metric, bucket_start, value (any sampling; hourly means are forecast).
    Metrics without a threshold (see :func:`threshold_for`) or with fewer than ``min_hours`` hours are
    skipped. Each dict: prediction, probability, timeframe, recommendations, plus component, metric,
    threshold, direction, method, lastValue, expectedCrossingAt, historyPoints and the forecast band, and
    riskScore (= probability), riskName ("risk score" until the corpus targets hold, see aiops/risk.py),
    rawRisk (before calibration) and the detected seasons. The risk and the band come from
    :func:`aiops.risk.assess` (empirical error trajectories, detected seasons); ``n_paths`` and ``seed``
    only concern :func:`failure_probability` and are kept for callers.
    ``workers`` > 1 fits the series in that many processes (each fit is independent; results identical)
    when there are at least ``min_pool_series`` series.
    """
    groups = [c for c in ("component", "metric") if c in frame.columns]
    n_series = frame.select(groups).n_unique() if groups else 1
    if groups and worth_a_pool(workers, n_series, n_series, min_pool_series):
        kw = {
            "thresholds": thresholds,
            "horizon_hours": horizon_hours,
            "n_paths": n_paths,
            "seed": seed,
            "min_hours": min_hours,
            "include_forecast": include_forecast,
        }
        chunks = split_series(frame, groups, workers)
        parts = process_map(functools.partial(_predict_chunk, kw), chunks, workers)
        merged = [item for part in parts for item in part]
        merged.sort(key=lambda d: (-d["probability"], d["component"], d["metric"]))
        return merged
    out = []
    parts = frame.sort("bucket_start").group_by(groups, maintain_order=True)
    for key, part in parts:
        labels = dict(zip(groups, key if isinstance(key, tuple) else (key,), strict=True))
        metric = str(labels.get("metric", "value"))
        comp = str(labels.get("component", "system"))
        rule = threshold_for(metric, thresholds)
        if rule is None:
            continue
        direction, thr = rule
        if part.select(pl.col("bucket_start").dt.truncate("1h").n_unique()).item() < min_hours:
            continue

        a = assess(hourly(part), thr, direction, horizon=horizon_hours, bounds=bounds_for(metric))
        fc, prob = a.forecast, a.risk
        crossing = a.frame.filter(
            (pl.col("forecast") > thr) if direction == "above" else (pl.col("forecast") < thr)
        )
        kind = metric_kind(metric)
        what = (
            f"{comp} failure"
            if kind == "uptime"
            else f"{comp} {metric} {'above' if direction == 'above' else 'below'} {thr:g}"
        )
        if prob >= 0.5:
            text = f"{what} likely within {horizon_hours} hours"
            recs = [
                r.format(c=comp) for r in _RECOMMENDATIONS[kind if kind in _RECOMMENDATIONS else "custom"]
            ]
        elif prob >= 0.2:
            text = f"{what} possible within {horizon_hours} hours"
            recs = [f"Monitor {comp} closely", "Review recent changes"]
        else:
            text = f"no {comp} failure expected within {horizon_hours} hours"
            recs = []
        item = {
            "prediction": text,
            "probability": prob,
            "timeframe": f"{horizon_hours} hours",
            "recommendations": recs,
            "component": comp,
            "metric": metric,
            "threshold": thr,
            "direction": direction,
            "method": fc.method,
            "lastValue": fc.last_value,
            "expectedCrossingAt": crossing["bucket_start"][0].isoformat() if crossing.height else None,
            "historyPoints": fc.history_points,
            "riskScore": prob,
            "riskName": "probability" if a.calibrated else "risk score",
            "rawRisk": a.raw_risk,
            "seasons": list(fc.seasons),
        }
        if include_forecast:
            item["forecast"] = [
                {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
                for row in a.frame.iter_rows(named=True)
            ]
        out.append(item)
    out.sort(key=lambda d: (-d["probability"], d["component"], d["metric"]))
    return out


def _predict_chunk(kw: dict, chunk: pl.DataFrame) -> list[dict]:
    return predict_failures(chunk, workers=1, **kw)
