"""Hand-run benchmarks of the AI-ops analytics (anomaly detection, trends, forecasts).

    python bench/bench_aiops.py speed [--series 1000 --days 7]   # the < 60 s budget on 1-minute data
                                                                   # (--workers: default the product's)
    python bench/bench_aiops.py anomaly                            # detector variants on a labelled corpus
    python bench/bench_aiops.py forecast                           # ETS vs SARIMAX vs seasonal naive backtest

The labelled corpus is synthetic and generated here from fixed seeds (no public data set is used, so the
detector is not tuned to any benchmark it may later be judged on). Numbers go to docs/AI_OPS_GUIDE.md.
"""

from __future__ import annotations

import os

# OpenBLAS threads spin against each other on many tiny statsmodels fits (10x slower under load);
# one thread per process is the right setting for this workload. Must be set before numpy/scipy load.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from autopilot_pipeline.aiops import trends  # noqa: E402
from autopilot_pipeline.aiops.detection import detect_batched  # noqa: E402
from autopilot_pipeline.aiops.detector import DetectorConfig, score_batch  # noqa: E402
from autopilot_pipeline.aiops.failure_prediction import predict_failures  # noqa: E402
from autopilot_pipeline.aiops.forecast import backtest, compare_methods  # noqa: E402
from autopilot_pipeline.aiops.series_time import grid_index  # noqa: E402
from autopilot_pipeline.aiops.settings import AiopsSettings  # noqa: E402

# ------------------------------------------------------------------------------------ labelled corpus


@dataclass
class Labelled:
    name: str
    t_sec: np.ndarray
    values: np.ndarray
    labels: np.ndarray  # point labels (bool)
    events: list[tuple[int, int, str]]  # [start, end) index ranges with their kind


def _base_series(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, int]:
    """A normal-behaviour series: (timestamps, values, noise scale, samples per day)."""
    if kind in ("hourly_seasonal", "trend_seasonal"):
        step, n = 3600, int(rng.integers(900, 1700))
    elif kind in ("daily_5min", "ar1_5min", "irregular"):
        step, n = 300, int(rng.integers(3000, 5000))
    else:
        step, n = 60, int(rng.integers(3000, 6000))
    per_day = 86400 // step
    t = 1_700_000_000 + step * np.arange(n, dtype=np.float64)
    i = np.arange(n)
    sd = float(rng.uniform(0.5, 5))
    level = float(rng.uniform(10, 500))
    day = 2 * np.pi * i / per_day
    if kind == "noise_1min":
        x = level + rng.normal(0, sd, n)
    elif kind == "heavy_t":
        x = level + sd * rng.standard_t(3, n)
    elif kind == "latency_lognormal":
        x = level * np.exp(rng.normal(0, 0.15, n))
        sd = level * 0.15
    elif kind == "counts":
        lam = float(rng.uniform(0.3, 8))
        x = rng.poisson(lam, n).astype(float)
        sd = np.sqrt(lam)
    elif kind == "uptime":
        checks = 60
        x = 100.0 * rng.binomial(checks, 0.998, n) / checks
        sd = 100.0 / checks
    elif kind == "ar1_5min":
        e = rng.normal(0, sd, n)
        x = np.empty(n)
        x[0] = level
        phi = float(rng.uniform(0.9, 0.995))
        for k in range(1, n):
            x[k] = level + phi * (x[k - 1] - level) + e[k]
    elif kind in ("daily_5min", "irregular"):
        amp = sd * float(rng.uniform(3, 10))
        x = level + amp * (np.sin(day) + 0.4 * np.sin(2 * day + 1)) + rng.normal(0, sd, n)
    elif kind == "hourly_seasonal":
        amp = sd * float(rng.uniform(2, 8))
        week = 2 * np.pi * i / (7 * per_day)
        x = level + amp * np.sin(day) + 0.5 * amp * np.sin(week) + rng.normal(0, sd, n)
    elif kind == "trend_seasonal":
        amp = sd * float(rng.uniform(2, 8))
        x = level + amp * np.sin(day + 0.5) + sd * float(rng.uniform(-4, 4)) * i / per_day / 10
        x = x + rng.normal(0, sd, n)
    else:
        raise ValueError(kind)
    if kind == "irregular":
        t = t + rng.uniform(-60, 60, n)
        keep = rng.random(n) > 0.05
        t, x = t[keep], x[keep]
    return t, x, sd, per_day


KINDS = (
    "noise_1min",
    "heavy_t",
    "latency_lognormal",
    "counts",
    "uptime",
    "ar1_5min",
    "daily_5min",
    "hourly_seasonal",
    "trend_seasonal",
    "irregular",
)


def _inject(kind: str, x: np.ndarray, sd: float, per_day: int, rng: np.random.Generator) -> Labelled:
    n = x.size
    labels = np.zeros(n, dtype=bool)
    events: list[tuple[int, int, str]] = []
    kinds = ["spike", "dip", "level_shift", "variance", "ramp"]
    if kind in ("daily_5min", "hourly_seasonal", "trend_seasonal", "irregular"):
        kinds.append("seasonal")
    if kind in ("counts", "uptime"):
        kinds = ["spike", "burst", "level_shift"] if kind == "counts" else ["dip", "outage"]
    n_events = int(rng.integers(2, 6))
    lo = max(200, int(0.15 * n))  # like NAB's probationary period: no anomaly before 15 %
    starts = np.sort(rng.choice(np.arange(lo, n - 60), size=n_events, replace=False))
    x = x.copy()
    last_end = 0
    for s0 in starts:
        s = int(s0)
        if s < last_end + 30:
            continue
        what = str(rng.choice(kinds))
        mag = sd * float(rng.uniform(4, 10))
        if what == "spike":
            width = int(rng.integers(1, 4))
            x[s : s + width] += mag
            e = s + width
        elif what == "dip":
            width = int(rng.integers(1, 4))
            x[s : s + width] -= mag if kind != "uptime" else float(rng.uniform(5, 30))
            e = s + width
        elif what == "outage":
            width = int(rng.integers(2, 10))
            x[s : s + width] = float(rng.uniform(0, 60))
            e = s + width
        elif what == "burst":
            width = int(rng.integers(3, 30))
            x[s : s + width] += rng.poisson(max(3 * sd * sd, 4), width) + 3 * sd
            e = s + width
        elif what == "level_shift":
            x[s:] += mag * float(rng.choice([-1, 1]))
            e = s + 10  # NAB-style: the onset window is the anomaly, the new level is normal afterwards
        elif what == "variance":
            width = int(rng.integers(30, 200))
            w = min(width, n - s)
            x[s : s + w] += rng.normal(0, 4 * sd, w)
            e = s + w
        elif what == "ramp":
            width = int(rng.integers(20, 120))
            w = min(width, n - s)
            x[s : s + w] += np.linspace(0, mag * 1.5, w)
            x[s + w :] += mag * 1.5
            e = s + w
        else:  # seasonal: one day's pattern replaced by its flat daily mean (values stay in range)
            w = min(per_day // 2, n - s)
            x[s : s + w] = np.mean(x[max(0, s - per_day) : s]) + rng.normal(0, sd, w)
            e = s + w
        e = min(e, n)
        labels[s:e] = True
        events.append((s, e, what))
        last_end = e
    if kind == "counts":
        x = np.maximum(np.rint(x), 0)
    if kind == "uptime":
        x = np.clip(x, 0, 100)
    return Labelled(kind, np.zeros(0), x, labels, events)


def make_corpus(n_per_kind: int = 6, seed: int = 20251127) -> list[Labelled]:
    rng = np.random.default_rng(seed)
    out = []
    for kind in KINDS:
        for k in range(n_per_kind):
            t, x, sd, per_day = _base_series(kind, rng)
            lab = _inject(kind, x, sd, per_day, rng)
            if k == 0 and kind == "irregular":
                miss = rng.random(x.size) < 0.03
                lab.values[miss] = np.nan
                lab.labels[miss] = False
            out.append(Labelled(f"{kind}#{k}", t, lab.values, lab.labels, lab.events))
    return out


# ---------------------------------------------------------------------------------------------- metrics


def average_precision(score: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise), ties broken pessimistically."""
    if labels.sum() == 0:
        return float("nan")
    order = np.lexsort((labels, -score))
    lab = labels[order]
    tp = np.cumsum(lab)
    prec = tp / np.arange(1, lab.size + 1)
    return float((prec * lab).sum() / lab.sum())


def event_metrics(flag: np.ndarray, events: list[tuple[int, int, str]], tol: int = 3) -> dict[str, float]:
    """Event recall, false-alarm runs (flag runs outside every event window + tol) and event F1."""
    n = flag.size
    covered = np.zeros(n, dtype=bool)
    hit = 0
    for s, e, _ in events:
        covered[s : min(n, e + tol)] = True
        hit += bool(flag[s : min(n, e + tol)].any())
    fa = flag & ~covered
    runs = int((fa & ~np.concatenate([[False], fa[:-1]])).sum()) if n else 0
    return {"events": len(events), "hits": hit, "false_runs": runs}


def _summarise(rows: list[dict]) -> dict[str, float]:
    ev = sum(r["events"] for r in rows)
    hits = sum(r["hits"] for r in rows)
    fr = sum(r["false_runs"] for r in rows)
    pts = sum(r["points"] for r in rows)
    rec = hits / ev if ev else float("nan")
    prec = hits / (hits + fr) if hits + fr else float("nan")
    f1 = 2 * rec * prec / (rec + prec) if rec + prec else 0.0
    aps = [r["ap"] for r in rows if not np.isnan(r["ap"])]
    return {
        "mean_AP": float(np.mean(aps)),
        "event_recall": rec,
        "false_alarms_per_10k": 1e4 * fr / pts,
        "event_F1": f1,
    }


# ---------------------------------------------------------------------------------------------- variants


def z_to_score(z: np.ndarray, threshold: float) -> np.ndarray:
    """A baseline's |z| as a ranking score in [0, 1], 0.5 at its threshold (only the order matters for AP)."""
    a = (np.abs(z) / threshold) ** 4
    return np.where(np.isinf(a), 1.0, a / (1.0 + a))


def _rolling_zscore(t: np.ndarray, x: np.ndarray, window: int = 100, thr: float = 3.0):
    """The seed's floor: z against the trailing mean and standard deviation."""
    s = pl.Series(x).fill_nan(None)
    m = s.shift(1).rolling_mean(window, min_samples=30).to_numpy()
    sd = s.shift(1).rolling_std(window, min_samples=30).to_numpy()
    z = np.abs(x - m) / np.where(sd > 0, sd, np.nan)
    z = np.nan_to_num(z, nan=0.0, posinf=1e6)
    return z_to_score(z, thr), z >= thr


def _rolling_mad(t: np.ndarray, x: np.ndarray, window: int = 31, scale_window: int = 500, thr: float = 4.5):
    """Trailing median baseline and trailing MAD of its residuals (no seasonality, no model choice)."""
    s = pl.Series(x).fill_nan(None)
    base = s.shift(1).rolling_median(window, min_samples=10)
    r = s - base
    sc = 1.4826 * r.abs().shift(1).rolling_median(scale_window, min_samples=20)
    z = (r / sc).to_numpy()
    z = np.nan_to_num(np.abs(z), nan=0.0, posinf=1e6)
    return z_to_score(z, thr), z >= thr


def _score_corpus(corpus: list[Labelled], cfg: DetectorConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Score every corpus series in one vectorised batch (same maths as score_series, much faster)."""
    packed = []
    for item in corpus:
        keep = ~np.isnan(item.values)
        packed.append((keep, item.values[keep], grid_index(item.t_sec[keep])))
    t_len = max(p[1].size for p in packed)
    vals = np.full((t_len, len(corpus)), np.nan)
    grid = np.zeros((t_len, len(corpus)), dtype=np.int64)
    for j, (_, v, g) in enumerate(packed):
        vals[: v.size, j] = v
        grid[: v.size, j] = g
    res = score_batch(vals, grid, np.array([p[1].size for p in packed]), cfg)
    out = []
    for j, (keep, v, _) in enumerate(packed):
        score = np.zeros(keep.size)
        flag = np.zeros(keep.size, dtype=bool)
        score[keep] = res.score[: v.size, j]
        flag[keep] = res.is_anomaly[: v.size, j]
        out.append((score, flag))
    return out


def anomaly_variants() -> dict[str, Callable | DetectorConfig]:
    """The two plain baselines beside the detector (its own ablations: bench/bench_detector.py)."""
    return {
        "seed z-score (mean/sd, 100 pts, z>3)": _rolling_zscore,
        "rolling median + MAD (31/500 pts)": _rolling_mad,
        "detector (calibrated tail probability)": DetectorConfig(),
    }


def run_anomaly_comparison(n_per_kind: int = 6) -> pl.DataFrame:
    corpus = make_corpus(n_per_kind)
    results = []
    for name, fn in anomaly_variants().items():
        rows = []
        by_kind: dict[str, list[dict]] = {}
        types: dict[str, list[int]] = {}
        t0 = time.perf_counter()
        scored = _score_corpus(corpus, fn) if isinstance(fn, DetectorConfig) else None
        for k, item in enumerate(corpus):
            score, flag = scored[k] if scored else fn(item.t_sec, item.values)
            r = {"ap": average_precision(score, item.labels), "points": item.values.size}
            r.update(event_metrics(flag, item.events))
            rows.append(r)
            by_kind.setdefault(item.name.split("#")[0], []).append(r)
            for s, e, what in item.events:
                types.setdefault(what, [0, 0])
                types[what][0] += bool(flag[s : min(flag.size, e + 3)].any())
                types[what][1] += 1
        summary = _summarise(rows)
        summary["recall_by_type"] = " ".join(f"{k}={v[0]}/{v[1]}" for k, v in sorted(types.items()))
        summary["seconds"] = time.perf_counter() - t0
        summary["variant"] = name
        for kind, kr in by_kind.items():
            summary[f"AP:{kind}"] = _summarise(kr)["mean_AP"]
        results.append(summary)
    # per anomaly type recall of the default
    return pl.DataFrame(results).select("variant", pl.exclude("variant"))


# ----------------------------------------------------------------------------------- failure calibration


def calibration_study(n_series: int = 16, days: int = 10, seed: int = 5) -> dict[str, object]:
    """Backtest the 24 h crossing probability on hourly latency-like series, half of which drift up
    through a threshold at a random time: Brier vs causal climatology, reliability by bin, lead times."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-01T00:00:00", "us")
    n = days * 24
    i = np.arange(n)
    probs, events, clim, leads = [], [], [], []
    cover80 = cover95 = 0.0
    for k in range(n_series):
        y = 200 + 20 * np.sin(2 * np.pi * (i + rng.integers(24)) / 24) + rng.normal(0, 6, n)
        fail_at = None
        if k % 2 == 0:
            onset = int(rng.integers(96, n - 48))
            y = y + np.clip(i - onset, 0, None) * rng.uniform(2, 8)
            over = np.flatnonzero(y > 400)
            fail_at = int(over[0]) if over.size else None
        ts = start + (i * 3_600_000_000).astype("timedelta64[us]")
        frame = pl.DataFrame({"bucket_start": ts, "value": y}).with_columns(
            pl.col("bucket_start").dt.replace_time_zone("UTC")
        )
        failures = [frame["bucket_start"][fail_at]] if fail_at is not None else []
        rep = backtest(
            frame,
            threshold=400.0,
            direction="above",
            step_hours=3,
            min_history_hours=72,
            failure_times=failures,
        )
        done = rep.per_origin.filter(pl.col("complete"))
        probs += done["probability"].to_list()
        events += done["event"].to_list()
        clim += done["climatology"].to_list()
        leads += rep.lead_times_hours
        cover80 += rep.coverage_80 / n_series
        cover95 += rep.coverage_95 / n_series
    p, e, c = np.array(probs), np.array(events, dtype=float), np.array(clim)
    bins = [(0.0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.01)]
    reliability = {
        f"p in [{lo:.1f},{min(hi, 1):.1f})": f"n={int(((p >= lo) & (p < hi)).sum())} "
        f"observed={e[(p >= lo) & (p < hi)].mean() if ((p >= lo) & (p < hi)).any() else float('nan'):.2f}"
        for lo, hi in bins
    }
    brier = float(np.mean((p - e) ** 2))
    brier_c = float(np.mean((c - e) ** 2))
    return {
        "origins": int(p.size),
        "event_rate": float(e.mean()),
        "brier": brier,
        "brier_climatology": brier_c,
        "brier_skill": 1 - brier / brier_c,
        "reliability": reliability,
        "lead_times_h": leads,
        "coverage_80": cover80,
        "coverage_95": cover95,
    }


# ------------------------------------------------------------------------------------------------ speed


def synthetic_minutes(n_series: int, days: int, seed: int = 7) -> pl.DataFrame:
    """Long frame [component, metric, bucket_start, value] of minute-level latency-like series."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    i = np.arange(n)
    base = 100 + 30 * np.sin(2 * np.pi * i / 1440)
    vals = base[None, :] + rng.normal(0, 5, (n_series, n)) + rng.uniform(0, 50, (n_series, 1))
    spikes = rng.random((n_series, n)) < 0.0005
    vals = vals + spikes * 80
    start = np.datetime64("2025-01-01T00:00:00", "us")
    ts = start + (i * 60_000_000).astype("timedelta64[us]")
    return pl.DataFrame(
        {
            "component": np.repeat([f"svc-{k:04d}" for k in range(n_series)], n),
            "metric": "response_time_ms",
            "bucket_start": np.tile(ts, n_series),
            "value": vals.ravel(),
        }
    ).with_columns(pl.col("bucket_start").dt.replace_time_zone("UTC"))


def _cpu_s() -> tuple[float, float]:
    """CPU seconds of this process and of its finished (waited-for) children, i.e. the pool's workers."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def run_speed(n_series: int, days: int, workers: int | None = None) -> dict[str, float]:
    """Wall and CPU seconds (this process and its worker processes) of each stage on minute data, the
    anomaly and forecast stages with the product's ``workers`` setting (``AiopsSettings().workers``).
    The total wall is the sum of the analytics stages (generating the data is not the product's work)."""
    workers = AiopsSettings().workers if workers is None else workers
    stages: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    t_start = time.perf_counter()

    def stage(name: str, fn: Callable):
        w, (c, cw) = time.perf_counter(), _cpu_s()
        out = fn()
        stages[f"{name}_wall_s"] = time.perf_counter() - w
        c2, cw2 = _cpu_s()
        stages[f"{name}_cpu_s"] = c2 - c + cw2 - cw
        if cw2 > cw:
            stages[f"{name}_cpu_s_in_workers"] = cw2 - cw
        return out

    frame = stage("generate", lambda: synthetic_minutes(n_series, days))
    found = stage("anomaly", lambda: detect_batched(frame, workers=workers))
    hourly = stage(
        "hourly_aggregate",
        lambda: (
            frame.group_by("component", "metric", pl.col("bucket_start").dt.truncate("1h"))
            .agg(pl.col("value").mean())
            .sort("component", "metric", "bucket_start")
        ),
    )
    tr = stage("trend", lambda: trends.analyze_trends(hourly, higher_is_better=False))
    fc = stage(
        "forecast",
        lambda: predict_failures(hourly, thresholds={"response_time_ms": ("above", 400.0)}, workers=workers),
    )
    analytics = ("anomaly", "hourly_aggregate", "trend", "forecast")
    return {
        "series": n_series,
        "points": frame.height,
        "workers": workers,
        "anomalies_found": found.height,
        "trends_degrading": int((tr["trend"] == "degrading").sum()),
        "predictions": len(fc),
        **stages,
        "total_analytics_wall_s": sum(stages[f"{k}_wall_s"] for k in analytics),
        "total_analytics_cpu_s": sum(stages[f"{k}_cpu_s"] for k in analytics),
        "elapsed_with_generation_s": time.perf_counter() - t_start,
        "load_average_1m_before": load_before,
        "load_average_1m_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--series", type=int, default=1000)
    sp.add_argument("--days", type=int, default=7)
    sp.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for the anomaly scoring and the forecasts (default: the product's setting, "
        "AiopsSettings().workers = min(2, cores))",
    )
    an = sub.add_parser("anomaly")
    an.add_argument("--per-kind", type=int, default=6)
    fc = sub.add_parser("forecast")
    fc.add_argument("--series", type=int, default=12)
    fc.add_argument("--no-sarimax", action="store_true", help="skip SARIMAX (about 1 s per fit)")
    fc.add_argument("--drift", action="store_true", help="temporary drifts instead of linear trends")
    sub.add_parser("calibration", help="backtest of the failure probability (Brier, reliability, lead)")
    args = parser.parse_args()
    pl.Config.set_tbl_rows(50)
    pl.Config.set_tbl_cols(30)
    pl.Config.set_tbl_width_chars(250)
    pl.Config.set_fmt_str_lengths(60)
    if args.what == "speed":
        for k, v in run_speed(args.series, args.days, args.workers).items():
            print(f"{k:>20}: {v:.2f}" if isinstance(v, float) else f"{k:>20}: {v}")
    elif args.what == "anomaly":
        table = run_anomaly_comparison(args.per_kind)
        print(table.drop(pl.selectors.starts_with("AP:"), "recall_by_type"))
        for row in table.iter_rows(named=True):
            print(f"{row['variant']}: {row['recall_by_type']}")
    elif args.what == "calibration":
        for k, v in calibration_study().items():
            print(f"{k:>18}: {v}")
    else:
        print(compare_methods(n_series=args.series, sarimax=not args.no_sarimax, trend=not args.drift))


if __name__ == "__main__":
    main()
