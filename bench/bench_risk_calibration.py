"""Choose the failure-risk recalibration map by cross-validation INSIDE the calibration split of a failure corpus.

    python bench/anomaly_corpus/failures.py --out /tmp/failure_corpus --per-set 12
    python bench/bench_risk_calibration.py /tmp/failure_corpus [--workers 2] [--cache /tmp/replays.pkl]

The held-out split is never read here (its series are not even replayed). The calibration split's series
are replayed causally as in ``autopilot backtest --corpus`` (origins every 12 h after 3 weeks, 504 hours of
history), then split into 5 folds *by series* (balanced over behaviour x common/rare), and each candidate
map is fitted on 4 folds and scored on the fifth. Reported per candidate, over the pooled out-of-fold
forecasts: log loss (the deciding criterion, a proper score), Brier skill vs climatology (common, rare) and
the worst decile gap with its cluster-robust standard error (series as clusters).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import pickle  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import isotonic_regression  # noqa: E402

from autopilot_pipeline.aiops import risk_backtest, risk_map  # noqa: E402

FOLDS = 5
CANDIDATES: dict[str, tuple[tuple[float, ...] | None, bool]] = {
    # name: (knots (None: isotonic regression), uses the history's base rate)
    "Platt (2 parameters)": ((), False),
    "Platt + base rate": ((), True),
    "isotonic": (None, False),
    "monotone, knots -4,0,4": ((-4.0, 0.0, 4.0), False),
    "monotone, knots -4..4 step 2": ((-4.0, -2.0, 0.0, 2.0, 4.0), False),
    "monotone, knots -6..6 step 3": ((-6.0, -3.0, 0.0, 3.0, 6.0), False),
    "monotone -4,0,4 + base rate": ((-4.0, 0.0, 4.0), True),
    "monotone -4..4 step 2 + base rate": ((-4.0, -2.0, 0.0, 2.0, 4.0), True),
    "monotone -6..6 step 3 + base rate": ((-6.0, -3.0, 0.0, 3.0, 6.0), True),
}


def _replays(corpus_dir: Path, workers: int, cache: Path | None) -> tuple[list[dict], list[dict]]:
    if cache and cache.exists():
        return pickle.loads(cache.read_bytes())
    corpus = [s for s in risk_backtest.load_corpus(corpus_dir) if s["split"] == "calibration"]
    reps = risk_backtest.replay_corpus(corpus, step_hours=12, workers=workers)
    meta = [{k: v for k, v in s.items() if k != "values"} for s in corpus]
    if cache:
        cache.write_bytes(pickle.dumps((meta, reps)))
    return meta, reps


def _fit_predict(knots, use_base, tr: dict, te: dict) -> np.ndarray:
    if knots is None:
        order = np.argsort(tr["raw"], kind="stable")
        fitted = np.clip(isotonic_regression(tr["event"][order]).x, 1e-3, 1 - 1e-3)
        return np.interp(te["raw"], tr["raw"][order], fitted)
    base_tr = tr["base"] if use_base else None
    slopes, intercept, coef = risk_map.fit_map(tr["raw"], tr["event"], base_tr, knots)
    return risk_map.apply_map(te["raw"], te["base"], knots, slopes, intercept, coef)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cache", type=Path, help="pickle of the calibration split's replays (reused)")
    args = parser.parse_args()
    meta, reps = _replays(args.corpus, args.workers, args.cache)
    rng = np.random.default_rng(0)
    fold_of: dict[int, int] = {}
    for key in sorted({(m["behaviour"], m["set"]) for m in meta}):
        ids = [i for i, m in enumerate(meta) if (m["behaviour"], m["set"]) == key]
        rng.shuffle(ids)
        fold_of.update({i: j % FOLDS for j, i in enumerate(ids)})
    keep = [i for i, r in enumerate(reps) if r["raw"].size]
    data = {
        k: np.concatenate([np.asarray(reps[i][k], dtype=np.float64) for i in keep])
        for k in ("raw", "base", "event", "clim")
    }
    series = np.concatenate([np.full(reps[i]["raw"].size, i) for i in keep])
    folds = np.array([fold_of[i] for i in series])
    common = np.concatenate([np.full(reps[i]["raw"].size, meta[i]["set"] == "common") for i in keep])
    ev = data["event"]
    print(
        f"calibration split of {args.corpus}: {len(keep)} series, {ev.size} forecasts, base rate {ev.mean():.3f}; "
        f"{FOLDS}-fold CV by series"
    )
    print(f"{'map':36s} {'log loss':>8s} {'skill common':>12s} {'skill rare':>10s}  worst decile gap ± s.e.")
    for name, (knots, use_base) in CANDIDATES.items():
        oof = np.empty_like(ev)
        for f in range(FOLDS):
            tr = {k: v[folds != f] for k, v in data.items()}
            te = {k: v[folds == f] for k, v in data.items()}
            oof[folds == f] = _fit_predict(knots, use_base, tr, te)
        p = np.clip(oof, 1e-6, 1 - 1e-6)
        ll = float(-np.mean(ev * np.log(p) + (1 - ev) * np.log(1 - p)))
        skill = {
            k: 1 - np.mean((oof[m] - ev[m]) ** 2) / np.mean((data["clim"][m] - ev[m]) ** 2)
            for k, m in (("common", common), ("rare", ~common))
        }
        rel = [r for r in risk_backtest._reliability(oof, ev, series) if r["n"] >= risk_backtest.MIN_DECILE]
        w = max(rel, key=lambda r: abs(r["gap"]))
        print(
            f"{name:36s} {ll:8.4f} {skill['common']:+12.3f} {skill['rare']:+10.3f}  "
            f"{100 * w['gap']:+.1f} ± {100 * w['gapSE']:.1f} ({w['decile']}, n={w['n']})"
        )


if __name__ == "__main__":
    main()
