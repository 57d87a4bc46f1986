"""Labelled anomaly corpus: production-like series, normal and abnormal, with NAB-style label windows.

    python bench/anomaly_corpus/generate.py [--out DIR] [--seed N]
    python bench/anomaly_corpus/generate.py --variant N --out DIR    # an overfitting check (N >= 1)

Writes ``<name>.csv`` (``timestamp,value``, ISO 8601 UTC) per series and ``labels.json``. Without ``--out``
the CSVs go to ``bench/anomaly_corpus/data/`` (gitignored) and the labels to ``bench/anomaly_corpus/labels.json``
(committed); with ``--out DIR`` both go to DIR. Deterministic: the same seed gives the same bytes.

Every series has one *behaviour* (how the metric normally moves: a daily season, an on/off square wave,
a zero-inflated bursty counter, ...) and at most one incident *kind* (spike, dip, level shift, ...),
injected 1-3 times; clean series have none. Levels, noise, periods, phases, duty cycles and incident sizes
are drawn from the seed, so no two series of a behaviour look alike. Labels follow the Numenta Anomaly
Benchmark: windows of 10 % of the series length in total, shared among its anomalies, centred on each
anomaly's onset (a slow leak's window starts at its onset: nothing is visible before it); no window
starts in the first 25 % of a series, so a detector has history to learn from.

The incident sizes are what an operator would call an incident (a spike of several times the normal
variation, an outage to zero, a stuck metric), not tuned to any detector.

``--variant N`` builds the same plan from another seed with perturbed shape parameters (periods and dwell
times, levels, noise, burst and error rates, incident sizes: each multiplied by a factor drawn for the
variant, see :func:`variant`), so a detector change can be checked on series it was not looked at with.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run as a script or loaded from its path: the shapes live beside it

from corpus_shapes import (  # noqa: E402
    BEHAVIOURS,
    DAY,
    KINDS,
    PERMANENT,
    Base,
    Perturb,
    set_perturbation,
    weekend,
)

DEFAULT_SEED = 20261204
_WINDOW_SHARE = 0.10
_FIRST_ONSET_SHARE = 0.25


# ----------------------------------------------------------------------------------------------- the corpus

# (behaviour, sampling interval in seconds, incident kind or "none", number of incidents)
PLAN: list[tuple[str, int, str, int]] = [
    ("daily_season", 300, "none", 0),
    ("daily_season", 60, "none", 0),
    ("daily_season", 300, "spike", 3),
    ("daily_season", 60, "dip", 2),
    ("daily_season", 300, "contextual", 2),
    ("daily_season", 300, "drop_to_zero", 2),
    ("daily_season", 60, "variance_change", 1),
    ("daily_season", 300, "pattern_change", 1),
    ("daily_weekly_season", 3600, "none", 0),
    ("daily_weekly_season", 300, "none", 0),
    ("daily_weekly_season", 3600, "level_shift", 1),
    ("daily_weekly_season", 3600, "pattern_change", 2),
    ("daily_weekly_season", 300, "contextual", 2),
    ("daily_weekly_season", 3600, "dip", 1),
    ("daily_weekly_season", 300, "drop_to_zero", 1),
    ("square_wave", 60, "none", 0),
    ("square_wave", 60, "none", 0),
    ("square_wave", 60, "pattern_change", 1),
    ("square_wave", 60, "flatline", 2),
    ("square_wave", 60, "drop_to_zero", 1),
    ("batch_job", 300, "none", 0),
    ("batch_job", 300, "pattern_change", 2),
    ("batch_job", 300, "contextual", 1),
    ("zero_inflated_bursty", 60, "none", 0),
    ("zero_inflated_bursty", 60, "none", 0),
    ("zero_inflated_bursty", 60, "level_shift", 1),
    ("zero_inflated_bursty", 60, "spike", 2),
    ("zero_inflated_bursty", 60, "spike", 1),
    ("heavy_tailed_latency", 60, "none", 0),
    ("heavy_tailed_latency", 60, "none", 0),
    ("heavy_tailed_latency", 60, "level_shift", 1),
    ("heavy_tailed_latency", 60, "spike", 2),
    ("heavy_tailed_latency", 60, "variance_change", 1),
    ("two_level_toggle", 300, "none", 0),
    ("two_level_toggle", 300, "none", 0),
    ("two_level_toggle", 300, "flatline", 1),
    ("two_level_toggle", 300, "level_shift", 1),
    ("slow_growth", 3600, "none", 0),
    ("slow_growth", 3600, "level_shift", 1),
    ("slow_growth", 3600, "dip", 2),
    ("sawtooth", 300, "none", 0),
    ("sawtooth", 300, "slow_leak", 1),
    ("sawtooth", 300, "pattern_change", 1),
    ("poisson_errors", 60, "none", 0),
    ("poisson_errors", 60, "none", 0),
    ("poisson_errors", 60, "spike", 3),
    ("poisson_errors", 60, "level_shift", 1),
    ("random_walk_memory", 60, "none", 0),
    ("random_walk_memory", 60, "slow_leak", 1),
    ("random_walk_memory", 60, "slow_leak", 2),
    ("random_walk_memory", 60, "drop_to_zero", 1),
    ("irregular_sampling", 60, "none", 0),
    ("irregular_sampling", 60, "spike", 2),
    ("irregular_sampling", 60, "drop_to_zero", 1),
    ("irregular_sampling", 60, "flatline", 1),
    ("irregular_sampling", 60, "level_shift", 1),
    ("stationary_noise", 300, "none", 0),
    ("stationary_noise", 300, "variance_change", 2),
    ("stationary_noise", 300, "flatline", 1),
    ("stationary_noise", 300, "dip", 1),
    ("stationary_noise", 300, "spike", 2),
]

_LENGTHS = {60: (8_000, 20_000), 300: (6_000, 17_280), 3600: (4_000, 8_760)}


@dataclass(frozen=True)
class Series:
    name: str
    behaviour: str
    kind: str
    tags: tuple[str, ...]
    interval_s: int  # the nominal sampling interval
    t: np.ndarray  # epoch seconds
    v: np.ndarray
    windows: tuple[tuple[int, int], ...]  # inclusive point indices
    anomalies: tuple[dict, ...]  # kind, onset, end (point indices, end exclusive)


def _align(b: Base, kind: str, i: int) -> int:
    """Move an onset forward to where the incident makes sense (a quiet hour, a weekend, a job's run)."""
    t, step = b.t, int(b.t[1] - b.t[0])
    tod = t % DAY
    if kind == "contextual" and "dur_s" in b.extra:
        ok = np.abs((tod - b.extra["start_h"] * 3600 - DAY // 2) % DAY) < step
    elif kind == "contextual":
        quiet = ((b.extra["peak"] + 11) % 24) * 3600
        ok = np.abs(tod - quiet) < step
    elif kind == "pattern_change" and "dur_s" in b.extra:
        ok = np.abs((tod - b.extra["start_h"] * 3600) % DAY) < step
    elif kind == "pattern_change" and "weekly" in b.extra:
        ok = (weekend(t) > 0.5) & (weekend(t - step) <= 0.5)
    elif kind == "flatline" and "on" in b.extra:  # stuck while on
        ok = b.v == b.extra["high"]
    else:
        return i
    hits = np.flatnonzero(ok[i:])
    return i + int(hits[0]) if hits.size else i


def _place(rng: np.random.Generator, b: Base, kind: str, count: int, n: int) -> list[tuple[int, int, int]]:
    """Onsets and windows ``(onset, lo, hi)`` for ``count`` incidents: one per equal segment of the
    eligible span, windows inside their segment, an aligned onset no later than its window allows."""
    w = int(round(_WINDOW_SHARE * n / count))
    first = int(_FIRST_ONSET_SHARE * n)
    seg = (n - first) / count
    step = int(b.t[1] - b.t[0])
    slack = (7 if kind == "pattern_change" and "weekly" in b.extra else 1) * DAY // step
    out = []
    for s in range(count):
        lo_s, hi_s = int(first + s * seg), int(first + (s + 1) * seg)
        leak = kind == "slow_leak"
        earliest = lo_s if leak else lo_s + w // 2
        latest = (hi_s - w) if leak else (hi_s - w // 2 - 1)
        if kind in PERMANENT:
            latest = min(latest, int(0.8 * n))
        latest = max(earliest, latest - slack)
        onset = _align(b, kind, int(rng.integers(earliest, latest + 1)))
        lo = onset if leak else onset - w // 2
        out.append((onset, lo, min(lo + w - 1, n - 1)))
    return out


def make_series(
    rng: np.random.Generator, behaviour: str, step: int, kind: str, count: int, name: str
) -> Series:
    lo_n, hi_n = _LENGTHS[step]
    if behaviour == "daily_weekly_season":
        lo_n = max(lo_n, 4 * 7 * DAY // step)
    n = int(rng.integers(lo_n, hi_n + 1))
    b = BEHAVIOURS[behaviour](rng, n, step)
    v = b.v.astype(np.float64).copy()
    windows, anomalies = [], []
    if kind != "none":
        for onset, lo, hi in _place(rng, b, kind, count, n):
            end = KINDS[kind](rng, b, v, onset, hi - lo + 1)
            windows.append((lo, hi))
            anomalies.append({"kind": kind, "onset": onset, "end": min(end, n)})
    if b.integer:
        v = np.round(v)
    t = b.t
    keep = b.extra.get("keep")
    if keep is not None:  # irregular sampling: drop samples and gaps, never the incident itself
        keep = keep.copy()
        for a in anomalies:
            keep[max(a["onset"] - 2, 0) : a["end"] + 2] = True
        for lo, hi in windows:
            keep[lo] = keep[hi] = True
        new_index = np.cumsum(keep) - 1
        t, v = t[keep], v[keep]
        windows = [(int(new_index[lo]), int(new_index[hi])) for lo, hi in windows]
        anomalies = [
            {**a, "onset": int(new_index[a["onset"]]), "end": int(new_index[a["end"] - 1]) + 1}
            for a in anomalies
        ]
    tags = [behaviour] + ([kind] if kind != "none" else ["clean"])
    if behaviour == "irregular_sampling":
        tags.append("daily_season")
    return Series(name, behaviour, kind, tuple(tags), step, t, v, tuple(windows), tuple(anomalies))


def build_corpus(seed: int = DEFAULT_SEED) -> list[Series]:
    """All series of the plan, each from its own child of the seed (adding a series leaves the others be)."""
    children = np.random.SeedSequence(seed).spawn(len(PLAN))
    out, seen = [], {}
    for (behaviour, step, kind, count), child in zip(PLAN, children, strict=True):
        key = f"{behaviour}__{kind}"
        seen[key] = seen.get(key, 0) + 1
        name = f"{key}__{seen[key]}"
        out.append(make_series(np.random.default_rng(child), behaviour, step, kind, count, name))
    return out


def variant(n: int) -> tuple[int, Perturb]:
    """Seed and perturbation of variant ``n`` (0: the committed corpus). Periods, levels and noise vary by
    up to a factor 1.6 either way, rates by 1.5, incident sizes from 0.75 to 1.25."""
    if n == 0:
        return DEFAULT_SEED, Perturb()
    rng = np.random.default_rng([DEFAULT_SEED, n])
    f = np.exp(rng.uniform(-1, 1, 4) * np.log([1.6, 1.6, 1.6, 1.5]))
    size = float(rng.uniform(0.75, 1.25))
    seed = int(rng.integers(1, 2**31))
    return seed, Perturb(
        period=float(f[0]), level=float(f[1]), noise=float(f[2]), rate=float(f[3]), size=size
    )


# -------------------------------------------------------------------------------------------------- output


def _iso(t: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(t.astype("datetime64[s]"), unit="s"), "Z")


def _fmt(v: np.ndarray) -> list[str]:
    return [f"{x:.10g}" for x in np.round(v, 4)]


def csv_text(s: Series) -> str:
    rows = "\n".join(f"{a},{b}" for a, b in zip(_iso(s.t), _fmt(s.v), strict=True))
    return f"timestamp,value\n{rows}\n"


def labels(corpus: list[Series], seed: int, perturb: Perturb | None = None) -> dict:
    series = {}
    for s in corpus:
        iso = _iso(s.t)
        series[s.name] = {
            "behaviour": s.behaviour,
            "kind": s.kind,
            "tags": list(s.tags),
            "interval_s": s.interval_s,
            "points": int(s.t.size),
            "windows": [[str(iso[lo]), str(iso[hi])] for lo, hi in s.windows],
            "anomalies": [
                {"kind": a["kind"], "onset": str(iso[a["onset"]]), "end": str(iso[a["end"] - 1])}
                for a in s.anomalies
            ],
        }
    doc = {"generator": "bench/anomaly_corpus/generate.py", "seed": seed}
    if perturb is not None and perturb != Perturb():
        doc["perturbation"] = {k: round(v, 4) for k, v in vars(perturb).items()}
    return {**doc, "series": series}


def write_corpus(
    out: Path | None = None,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str], None] | None = None,
    perturb: Perturb | None = None,
) -> Path:
    """Write the CSVs and labels.json; returns the labels path. ``out=None``: the committed layout."""
    data_dir = out if out is not None else HERE / "data"
    labels_path = (out if out is not None else HERE) / "labels.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    set_perturbation(perturb or Perturb())
    try:
        corpus = build_corpus(seed)
    finally:
        set_perturbation(Perturb())
    for k, s in enumerate(corpus, 1):
        (data_dir / f"{s.name}.csv").write_text(csv_text(s))
        if progress:
            progress(f"[{k}/{len(corpus)}] {s.name} ({s.t.size} points)")
    labels_path.write_text(json.dumps(labels(corpus, seed, perturb), indent=1) + "\n")
    return labels_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="directory for the CSVs and labels.json")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--variant", type=int, default=0, help="N >= 1: other seed, perturbed shapes (needs --out)"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.variant < 0 or (args.variant and args.out is None):
        parser.error("--variant needs N >= 1 and --out DIR (the committed labels stay as they are)")
    say = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    seed, perturb = variant(args.variant) if args.variant else (args.seed, None)
    if args.variant and say:
        say(f"variant {args.variant}: seed {seed}, {perturb}")
    path = write_corpus(args.out, seed, say, perturb)
    print(f"wrote {len(PLAN)} series and {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
