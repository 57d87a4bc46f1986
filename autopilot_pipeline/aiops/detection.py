"""Anomaly scoring of the hourly health series: the causal detector (:mod:`.detector`) plus a significance gate for the
two proportions, error ratio and uptime. Pure (polars, numpy, scipy): no database, no Dagster.

Why the gate: the seed's rule "error rate above 3x baseline" is meaningless on sparse counts. With ~80 events
an hour and a 1 % baseline, 3 errors instead of 1 is "3x" and happens by chance every few days per
component (measured on the demo data: ~8 false alarms per component-week from this rule alone). Likewise a
perfectly flat uptime of 100 % makes one failed check out of 80 (a network blip) a "critical" anomaly.
Both metrics are proportions of a count, so an anomaly on them (from the ratio rule or the robust z) must
also be *significant* under the binomial model: the probability of at least that many failures (errors;
failed checks) among that hour's trials (events; checks), at the detector's expected failure rate
floored at 1 %, must be below ``alpha``. The default 1e-3 comes from the false-alarm budget, not from
labels: at most one false alarm per component-week over ~7 metrics x 168 hours means a per-metric-hour
rate below about 1/1,200.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from autopilot_pipeline.aiops.detector import DetectorConfig, detect_anomalies, episode_starts, metric_kind
from autopilot_pipeline.aiops.metric_kinds import Direction
from autopilot_pipeline.aiops.parallel import process_map, worth_a_pool

__all__ = [
    "BATCH_SERIES",
    "COUNTS_SCHEMA",
    "DEFAULT_ALPHA",
    "PROPORTIONS",
    "POOL_MIN_ROWS",
    "SCORE_SCHEMA",
    "detect_batched",
    "resource_directions",
    "score_window",
    "seed_anomalies",
]

DEFAULT_ALPHA = 1e-3
#: metric -> how its expected value becomes the expected failure rate of one trial
PROPORTIONS = {"error_ratio": "ratio", "uptime_pct": "percent_up", "degraded_ratio": "ratio"}
_NOT_ANOMALY_CAP = 0.4999  # a non-anomaly's confidence stays below the 0.5 decision point

TS = pl.Datetime("us", "UTC")
SCORE_SCHEMA: dict[str, pl.DataType] = {
    "bucket_start": TS,
    "component": pl.String(),
    "metric": pl.String(),
    "is_anomaly": pl.Boolean(),
    "anomaly_score": pl.Float64(),
    "confidence": pl.Float64(),
    "severity": pl.String(),
    "reason": pl.String(),
    "expected_value": pl.Float64(),
    "actual_value": pl.Float64(),
    "robust_z": pl.Float64(),
    "method": pl.String(),
    "p_value": pl.Float64(),
}
COUNTS_SCHEMA: dict[str, pl.DataType] = {
    "component": pl.String(),
    "metric": pl.String(),
    "bucket_start": TS,
    "trials": pl.Int64(),
    "failures": pl.Int64(),
}
"""Per hour and proportion metric: error_ratio -> events and errors; uptime_pct -> checks and failed checks;
degraded_ratio -> checks and degraded checks."""


#: Most series of one metric the detector scores as one batch (one array, a column per series). Measured
#: on 512 series x 7 days of 1-minute data (one process): batches of 128 took 19 CPU s and 1.2 GB, of 256
#: 22 s, one batch of 512 30 s and 2.1 GB (the arrays of a narrower batch stay in the caches); narrower
#: batches pay the detector's per-time-step loops once more each. 128 also deals a 1,000-series fleet into
#: eight batches, which any number of worker processes shares evenly.
BATCH_SERIES = 128
#: Fewest rows worth the worker processes: the detector costs 3-5 us a point on one core, so 300,000
#: rows are about what starting a worker costs (1-2 s).
POOL_MIN_ROWS = 300_000


def detect_batched(
    frame: pl.DataFrame,
    config: DetectorConfig | None = None,
    *,
    workers: int = 1,
    batch_series: int = BATCH_SERIES,
    min_pool_rows: int = POOL_MIN_ROWS,
    **options: Any,
) -> pl.DataFrame:
    """:func:`.detector.detect_anomalies` (``options``: its keyword arguments) over fixed batches of at most
    ``batch_series`` series of one metric (as few as can be, of equal size), the batches in ``workers``
    processes when the frame has at least ``min_pool_rows`` rows. Rows sorted by component, metric and
    timestamp.

    Why fixed batches: the detector scores a batch as one array, and gives a series the same scores
    whatever series share its batch (tests/test_detector_batch_independence.py: bit for bit, also on the
    corpus). Batches cut by metric and series name only, never by the number of workers, keep that true
    should a future numpy or BLAS round a wide array differently again: the result is the same for any
    ``workers``, and with at most ``batch_series`` series per metric it is also that of a single
    :func:`detect_anomalies` call.
    """
    if batch_series < 1:
        raise ValueError(f"batch_series must be >= 1, not {batch_series}")
    detect = functools.partial(detect_anomalies, config=config, **options)
    if not {"component", "metric", "bucket_start", "value"} <= set(frame.columns):
        return detect(frame)  # the detector's own error for a missing column
    batch, split = _batches(frame, batch_series)
    pieces = int(batch.max()) + 1 if batch.size else 0
    pool = worth_a_pool(workers, pieces, frame.height, min_pool_rows)
    if not pool and not split:
        out = detect(frame)  # one batch per metric: the detector's own grouping
    else:
        parts = (
            frame.select("component", "metric", "bucket_start", "value")
            .with_columns(pl.Series("_batch", batch))
            .partition_by("_batch", include_key=False)
        )
        parts.sort(key=lambda p: -p.height)  # the largest first: the workers finish together
        out = pl.concat(process_map(detect, parts, workers if pool else 1))
    return out.sort("component", "metric", "timestamp")


def _batches(frame: pl.DataFrame, batch_series: int) -> tuple[np.ndarray, bool]:
    """Each row's batch (0..k-1) and whether some metric has more than one batch. A metric's series, in
    name order, fall into ceil(n / batch_series) batches of equal size (+-1).

    Rows of one series usually come together, so the keys are read per run of equal (metric, component)
    rows, not per row: string hashing of ten million rows costs seconds, comparing neighbours does not."""
    if frame.is_empty():
        return np.zeros(0, dtype=np.int64), False
    new = (pl.col("component") != pl.col("component").shift()) | (
        pl.col("metric") != pl.col("metric").shift()
    )
    new = new.fill_null(True)
    run = frame.select(new.cum_sum() - 1)
    starts = frame.select("metric", "component").filter(frame.select(new).to_series())
    n = pl.len().over("metric")
    keys = (
        starts.unique()
        .sort("metric", "component")
        .with_columns(
            (pl.int_range(pl.len()).over("metric") * ((n + batch_series - 1) // batch_series) // n).alias(
                "_b"
            )
        )
        .with_columns(pl.struct("metric", "_b").rank("dense").cast(pl.Int64).alias("_batch") - 1)
    )
    per_run = starts.join(
        keys, on=["metric", "component"], how="left", maintain_order="left", nulls_equal=True
    )["_batch"]
    return per_run.to_numpy()[run.to_series().to_numpy()], bool(keys["_b"].max())


_RESOURCE_HINTS = ("usage", "utilization", "utilisation", "saturation", "connections")


def resource_directions(metrics: list[str]) -> dict[str, Direction]:
    """Resource metrics (``*_pct``, ``*_percent``, or names with usage / utilization / saturation /
    connections) only matter when they rise: exhaustion is the failure, and their failure threshold is
    "above" too. Other custom metrics keep the detector's default (both directions)."""
    out: dict[str, Direction] = {}
    for name in metrics:
        low = name.lower()
        if metric_kind(name) == "custom" and (
            low.endswith(("_pct", "_percent")) or any(h in low for h in _RESOURCE_HINTS)
        ):
            out[name] = "up"
    return out


def _binomial_p(errors: np.ndarray, events: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """P(X >= errors) for X ~ Binomial(events, p0); NaN where an input is missing."""
    out = np.full(errors.size, np.nan)
    ok = ~(np.isnan(errors) | np.isnan(events) | np.isnan(p0)) & (events > 0)
    out[ok] = stats.binom.sf(errors[ok] - 1, events[ok], np.clip(p0[ok], 0.0, 1.0))
    return out


def score_window(
    series: pl.DataFrame,
    window_start: datetime,
    *,
    counts: pl.DataFrame | None = None,
    config: DetectorConfig | None = None,
    alpha: float = DEFAULT_ALPHA,
    floor: float = 0.01,
    directions: dict[str, Direction] | None = None,
    workers: int = 1,
    min_pool_rows: int = POOL_MIN_ROWS,
) -> pl.DataFrame:
    """Score every point at or after ``window_start`` of the long ``series`` (component, metric,
    bucket_start, value); the points before it only train the detector (causal: a score uses its past).

    ``counts`` (:data:`COUNTS_SCHEMA`) enables the binomial gate on error ratio and uptime; without them
    the detector's decision stands. ``floor`` is the lowest expected failure rate the gate (and the seed's
    3x ratio rule) assumes. ``directions`` overrides which deviations count per metric (default:
    :func:`resource_directions`, the detector's defaults otherwise). ``workers`` processes score the
    series when there are at least ``min_pool_rows`` rows (:func:`detect_batched`; the result does not
    depend on ``workers``). One row per scored point, columns :data:`SCORE_SCHEMA`.
    """
    if series.is_empty():
        return pl.DataFrame(schema=SCORE_SCHEMA)
    scored = detect_batched(
        series,
        config,
        workers=workers,
        min_pool_rows=min_pool_rows,
        directions=resource_directions(series["metric"].unique().to_list())
        if directions is None
        else directions,
        since=window_start,
        only_anomalies=False,
        error_ratio_floor=floor,
    ).rename(
        {
            "timestamp": "bucket_start",
            "isAnomaly": "is_anomaly",
            "expectedValue": "expected_value",
            "actualValue": "actual_value",
        }
    )
    if scored.is_empty():
        return pl.DataFrame(schema=SCORE_SCHEMA)
    frame = counts if counts is not None else pl.DataFrame(schema=COUNTS_SCHEMA)
    scored = scored.join(
        frame.select(list(COUNTS_SCHEMA)).cast(COUNTS_SCHEMA),  # type: ignore[arg-type]
        on=["component", "metric", "bucket_start"],
        how="left",
    )
    kind = scored["metric"].replace_strict(PROPORTIONS, default=None, return_dtype=pl.String)
    expected = scored["expected_value"].fill_null(np.nan).to_numpy()
    rate = np.where((kind == "percent_up").to_numpy(), 1.0 - expected / 100.0, expected)
    p0 = np.maximum(rate, floor)
    p_value = _binomial_p(
        scored["failures"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        scored["trials"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        p0,
    )
    p_value = np.where(kind.is_not_null().to_numpy(), p_value, np.nan)
    gated = scored["alarm"].to_numpy() & ~np.isnan(p_value) & (p_value >= alpha)
    out = scored.with_columns(
        pl.Series("p_value", p_value).fill_nan(None),
        pl.Series("_gated", gated),
        pl.Series("_p0", p0).fill_nan(None),
    )
    outcome = (
        pl.when(pl.col("metric") == "uptime_pct")
        .then(pl.lit("checks failed"))
        .when(pl.col("metric") == "degraded_ratio")
        .then(pl.lit("checks were degraded"))
        .otherwise(pl.lit("events were errors"))
    )
    quiet = pl.format(
        "{} of {} {} at an expected rate of {}: not significant (p = {})",
        pl.col("failures"),
        pl.col("trials"),
        outcome,
        pl.col("_p0").round_sig_figs(3),
        pl.col("p_value").round_sig_figs(2),
    )
    # An episode starts at its first alarm that survives the gate (a gated blip must not swallow the outage
    # that follows it).
    out = out.sort("component", "metric", "bucket_start")
    sid = out.select(pl.struct("component", "metric").rank("dense")).to_series().to_numpy()
    live = (out["alarm"] & ~out["_gated"]).to_numpy()
    out = out.with_columns(
        pl.Series("is_anomaly", episode_starts(sid, live, out["anomaly_score"].fill_null(0.0).to_numpy()))
    )
    # Only an episode's first alarm is an anomaly: the rest of the episode (and every gated point) keeps
    # its reason but no severity, and a confidence below the 0.5 decision point.
    quiet_row = ~pl.col("is_anomaly")
    out = out.with_columns(
        pl.when(quiet_row).then(pl.lit("none")).otherwise("severity").alias("severity"),
        pl.when("_gated").then(quiet).otherwise("reason").alias("reason"),
        pl.when(quiet_row)
        .then(pl.min_horizontal("confidence", pl.lit(_NOT_ANOMALY_CAP)))
        .otherwise("confidence")
        .alias("confidence"),
    )
    return out.select(list(SCORE_SCHEMA)).cast(SCORE_SCHEMA).sort("bucket_start", "component", "metric")  # type: ignore[arg-type]


def seed_anomalies(scores: pl.DataFrame) -> list[dict]:
    """The anomalies of ``scores`` as the seed's JSON objects (``isAnomaly``, ``confidence``, ``reason``,
    ``expectedValue``, ``actualValue``, ``severity``) plus component, metric, timestamp and the score
    details; most confident first."""
    found = scores.filter(pl.col("is_anomaly")).sort(
        ["confidence", "bucket_start", "component", "metric"], descending=[True, False, False, False]
    )
    return [
        {
            "isAnomaly": True,
            "confidence": round(float(r["confidence"]), 4),
            "reason": r["reason"],
            "expectedValue": r["expected_value"],
            "actualValue": r["actual_value"],
            "severity": r["severity"],
            "component": r["component"],
            "metric": r["metric"],
            "timestamp": r["bucket_start"].isoformat(),
            "anomalyScore": r["anomaly_score"],
            "robustZ": r["robust_z"],
            "method": r["method"],
            "pValue": r["p_value"],
        }
        for r in found.iter_rows(named=True)
    ]
