"""Replays of a failure corpus' split for the calibration benchmarks, cached as pickles (a replay of a few
hundred series takes minutes; the same replays serve several reports)."""

from __future__ import annotations

import pickle
from pathlib import Path

from autopilot_pipeline.aiops import risk_backtest


def split_replays(
    corpus_dir: Path, split: str, workers: int, cache_dir: Path | None
) -> tuple[list[dict], list[dict]]:
    """The ``split`` series' manifest entries (without values) and their replays, origins every 12 h as
    in the documented backtests; read from ``cache_dir`` when there (``<corpus>.<split>.pkl``)."""
    cache = cache_dir / f"{corpus_dir.name}.{split}.pkl" if cache_dir else None
    if cache and cache.exists():
        return pickle.loads(cache.read_bytes())
    corpus = risk_backtest.load_corpus(corpus_dir, split)
    print(f"replaying {len(corpus)} {split} series of {corpus_dir} ...", flush=True)
    reps = risk_backtest.replay_corpus(corpus, step_hours=12, workers=workers)
    meta = [{k: v for k, v in s.items() if k != "values"} for s in corpus]
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((meta, reps)))
    return meta, reps
