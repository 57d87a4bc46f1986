"""Failure predictions from cleaned history. Pure (polars/numpy, the core forecaster and detector).

The core forecaster (ETS with Gaussian errors) estimates its noise from everything it sees. One past outage
(uptime 35 % in a series of 100s) or error burst inflates that estimate for days, and the 24-hour crossing
probability of *every* later forecast with it: on the demo data, components that had an incident carried a
"failure likely" of 0.8-0.99 for the rest of the week. Robust forecasting practice (e.g. ``tsclean`` in R's
forecast package) replaces past outliers before fitting. Here, points the causal detector scored
``min_score`` or more (0.99: a combined tail probability below 1 %, about a |z| of 3 in the harmful direction
for one of the detector's five tests) are replaced by the detector's
expected value, except in the most recent ``keep_recent_hours``: a problem developing now is forecast as it
is. Both the outliers and their replacements come from the causal detector, so the prediction at an origin
still uses only data before it. Measured effect in docs/AI_OPS_GUIDE.md ("Failure prediction in the
pipeline").
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from autopilot_pipeline.aiops.detection import score_window
from autopilot_pipeline.aiops.failure_prediction import predict_failures

__all__ = ["CLEAN_MIN_SCORE", "KEEP_RECENT_HOURS", "clean_history", "predict_at"]

HOUR = timedelta(hours=1)
KEEP_RECENT_HOURS = 6
CLEAN_MIN_SCORE = 0.99
TS = pl.Datetime("us", "UTC")


def _excursions(
    deviation: np.ndarray, flagged: np.ndarray, series_id: np.ndarray, carry: float
) -> np.ndarray:
    """Flagged points plus the rest of their excursion: the following points of the same series that stay on
    the same side of the expected value by at least ``carry`` x the flagged deviation. The detector marks
    the start of an excursion; its later points often score low (its scale and quantum floor react to the
    first one), yet a two-hour outage is one outage."""
    out = flagged.copy()
    sign = 0.0
    size = 0.0
    prev = None
    for i in range(deviation.size):
        if series_id[i] != prev:
            sign, size, prev = 0.0, 0.0, series_id[i]
        d = deviation[i]
        if flagged[i] and not np.isnan(d):
            sign, size = float(np.sign(d)), abs(float(d))
        elif sign != 0.0 and not np.isnan(d) and np.sign(d) == sign and abs(d) >= carry * size:
            out[i] = True
        else:
            sign = 0.0
    return out


def clean_history(
    series: pl.DataFrame,
    scores: pl.DataFrame,
    origin: datetime,
    *,
    keep_recent_hours: int = KEEP_RECENT_HOURS,
    min_score: float = CLEAN_MIN_SCORE,
    carry: float = 0.5,
) -> pl.DataFrame:
    """``series`` (component, metric, bucket_start, value) with past outliers replaced by the detector's
    expected value; a boolean ``cleaned`` column marks them. ``scores`` has component, metric,
    bucket_start, anomaly_score, expected_value, robust_z (from :func:`score_window`). A point is an outlier
    when it scored ``min_score`` or more and deviates on the side that alarmed, or continues such a point's
    excursion (see :func:`_excursions`)."""
    keys = ["component", "metric", "bucket_start"]
    flags = scores.select(*keys, "anomaly_score", "expected_value", "robust_z").cast({"bucket_start": TS})
    joined = (
        series.cast({"bucket_start": TS})
        .join(flags, on=keys, how="left")
        .sort(keys)
        .with_columns(pl.struct("component", "metric").rank("dense").alias("_sid"))
    )
    deviation = (joined["value"] - joined["expected_value"]).fill_null(np.nan).to_numpy()
    # A window statistic keeps alarming for a few points after an outlier: only a point that deviates on
    # the side that alarmed is itself an outlier.
    side = np.sign(joined["robust_z"].fill_null(0.0).to_numpy())
    flagged = (joined["anomaly_score"].fill_null(0.0) >= min_score).to_numpy() & (np.sign(deviation) == side)
    outlier = _excursions(deviation, flagged, joined["_sid"].to_numpy(), carry)
    old = (joined["bucket_start"] < origin - keep_recent_hours * HOUR).to_numpy()
    replace = outlier & old & joined["expected_value"].is_not_null().to_numpy()
    return joined.with_columns(
        pl.when(pl.Series(replace)).then("expected_value").otherwise("value").alias("value"),
        pl.Series("cleaned", replace),
    ).select(*series.columns, "cleaned")


def predict_at(
    series: pl.DataFrame,
    origin: datetime,
    *,
    history_hours: int = 336,
    horizon_hours: int = 24,
    scores: pl.DataFrame | None = None,
    counts: pl.DataFrame | None = None,
    keep_recent_hours: int = KEEP_RECENT_HOURS,
    min_score: float = CLEAN_MIN_SCORE,
    n_paths: int = 1000,
    workers: int = 1,
    include_forecast: bool = True,
) -> tuple[list[dict], pl.DataFrame]:
    """Failure predictions made at ``origin`` from the buckets before it (the seed's shape, most likely
    first), and the cleaned history they were fitted on.

    ``scores`` may be given when the caller already scored the series (any scoring from the series' start
    is the same, the detector being causal); otherwise the whole ``series`` before ``origin`` is scored here.
    Each prediction gains ``cleanedPoints``: how many past outliers of its series were replaced.
    """
    past = series.filter(pl.col("bucket_start") < pl.lit(origin).cast(TS))
    if past.is_empty():
        return [], past.with_columns(pl.lit(False).alias("cleaned"))
    if scores is None:
        scores = score_window(past, past["bucket_start"].min(), counts=counts, workers=workers)  # type: ignore[arg-type]
    hist = past.filter(pl.col("bucket_start") >= pl.lit(origin - history_hours * HOUR).cast(TS))
    cleaned = clean_history(hist, scores, origin, keep_recent_hours=keep_recent_hours, min_score=min_score)
    predictions = predict_failures(
        cleaned.drop("cleaned"),
        horizon_hours=horizon_hours,
        n_paths=n_paths,
        workers=workers,
        include_forecast=include_forecast,
    )
    replaced = dict(
        ((c, m), int(n))
        for c, m, n in cleaned.group_by("component", "metric").agg(pl.col("cleaned").sum()).iter_rows()
    )
    for p in predictions:
        p["cleanedPoints"] = replaced.get((p["component"], p["metric"]), 0)
    return predictions, cleaned
