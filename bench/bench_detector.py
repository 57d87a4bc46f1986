"""Speed and false-alarm rate of the anomaly detector (``aiops.detector``) on generated series.

    python bench/bench_detector.py speed      # 1,000 series x 7 days x 1 min in one batch; one 20k series
    python bench/bench_detector.py clean      # alarm episodes per 2,000 points on normal behaviours

The series are generated here (seeded): a mix of the behaviours a production system shows (daily
season, square wave, bursty zero-inflated counts, heavy-tailed latency, two-level toggles, slow growth,
sawtooth, low-count errors, random walk). Numbers go to docs/AI_OPS_GUIDE.md ("Detector").
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from autopilot_pipeline.aiops.detector import score_batch, score_series  # noqa: E402


def behaviours(n: int, seed: int) -> dict[str, np.ndarray]:
    """One series of each normal behaviour, ``n`` minute-level points."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    toggle = np.cumsum(rng.random(n) < 0.01) % 2
    return {
        "daily": 100 + 30 * np.sin(2 * np.pi * i / 1440) + rng.normal(0, 3, n),
        "square": np.where((i % 180) < 90, 2.0, 60.0),
        "bursty": np.where(rng.random(n) < 0.05, rng.geometric(0.03, n), 0).astype(float),
        "latency": np.where(rng.random(n) < 0.003, 5, 1) * np.exp(rng.normal(np.log(80), 0.3, n)),
        "toggle": 20 + 30 * toggle + rng.normal(0, 1, n),
        "growth": 30 + 0.002 * i + rng.normal(0, 1, n),
        "sawtooth": 0.1 * (i % 700) + rng.normal(0, 0.4, n),
        "errors": rng.poisson(0.4, n).astype(float),
        "random_walk": 300 + np.cumsum(rng.normal(0, 0.5, n)),
        "noise": 50 + rng.normal(0, 2, n),
    }


def speed() -> None:
    n, n_ser = 7 * 1440, 1000
    kinds = list(behaviours(16, 0))
    cols = [behaviours(n, s // len(kinds))[kinds[s % len(kinds)]] for s in range(n_ser)]
    x = np.column_stack(cols)
    start = time.perf_counter()
    res = score_batch(x)
    batch_s = time.perf_counter() - start
    print(f"score_batch: {n_ser} series x {n} points in {batch_s:.1f} s ({res.is_anomaly.sum()} episodes)")
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    y = behaviours(20_000, 7)["daily"]
    ts = pl.Series([t0 + timedelta(minutes=k) for k in range(y.size)])
    start = time.perf_counter()
    score_series(ts, y)
    print(f"score_series: 20,000 points in {time.perf_counter() - start:.2f} s")


def clean() -> None:
    n = 20_000
    rows = []
    for seed in range(5):
        for name, x in behaviours(n, 100 + seed).items():
            res = score_batch(x[:, None])
            rows.append({"behaviour": name, "seed": seed, "episodes": int(res.is_anomaly.sum())})
    df = pl.DataFrame(rows)
    summary = df.group_by("behaviour", maintain_order=True).agg(
        (pl.col("episodes").sum() / (pl.len() * n / 2000)).round(3).alias("episodes_per_2000")
    )
    print(summary)
    print(f"all: {df['episodes'].sum() / (df.height * n / 2000):.3f} episodes per 2,000 points")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("speed", "clean"))
    {"speed": speed, "clean": clean}[parser.parse_args().what]()
