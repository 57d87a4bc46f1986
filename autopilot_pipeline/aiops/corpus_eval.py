"""A detector against a labelled corpus (``bench/anomaly_corpus``): reading it, scoring every series, and the
windowed score (:mod:`window_scoring`) per behaviour, per incident kind and overall.

A corpus directory holds ``labels.json`` (``{"series": {name: {behaviour, kind, windows: [[start, end]],
...}}}``, window bounds as ISO 8601 timestamps, inclusive) and one ``<name>.csv`` (``timestamp,value``) per
series, beside it or in ``data/``. The detector is any function ``(epoch_seconds, values) -> (anomaly_score,
is_anomaly)``; the command passes the shipped one.

Two operating points are reported per profile: the detector's own decisions (``is_anomaly``, or ``score >=
threshold`` when a threshold is given) and the best single threshold on the score, shared by the whole
corpus (an upper bound: it is chosen with the labels, so it says how good the ranking is, not the detector).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from autopilot_pipeline.aiops.window_scoring import (
    PROFILES,
    SweepCurve,
    best_threshold,
    normalise,
    probation_length,
    score_alarms,
    sweep_curve,
    threshold_grid,
)
from autopilot_pipeline.errors import AutopilotError

__all__ = [
    "CorpusSeries",
    "Detector",
    "evaluate_corpus",
    "load_corpus",
    "missing_csvs",
    "read_labels",
    "read_series",
    "report_tables",
]

Detector = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
EPISODE_GAP = 10


@dataclass(frozen=True)
class CorpusSeries:
    name: str
    behaviour: str
    kind: str
    t_sec: np.ndarray
    values: np.ndarray
    windows: tuple[tuple[int, int], ...]


def read_labels(corpus: Path) -> dict[str, dict]:
    """``labels.json`` of a corpus directory, checked: one clear error for anything missing or malformed."""
    if not corpus.is_dir():
        raise AutopilotError(f"corpus directory {corpus} does not exist")
    path = corpus / "labels.json"
    if not path.is_file():
        raise AutopilotError(f"{corpus}: no labels.json (a corpus needs labels.json and one CSV per series)")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AutopilotError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    series = doc.get("series") if isinstance(doc, dict) else None
    if not isinstance(series, dict) or not series:
        raise AutopilotError(f"{path}: expected an object with a non-empty 'series' object")
    for name, meta in series.items():
        ok = (
            isinstance(meta, dict)
            and isinstance(meta.get("behaviour"), str)
            and isinstance(meta.get("kind"), str)
        )
        wins = meta.get("windows") if isinstance(meta, dict) else None
        ok = ok and isinstance(wins, list) and all(isinstance(w, list) and len(w) == 2 for w in wins)
        if not ok:
            raise AutopilotError(
                f"{path}: series {name!r} needs 'behaviour' and 'kind' strings and 'windows' as [[start, end], ...]"
            )
    return series


def _csv_path(corpus: Path, name: str) -> Path | None:
    for p in (corpus / f"{name}.csv", corpus / "data" / f"{name}.csv"):
        if p.is_file():
            return p
    return None


def missing_csvs(corpus: Path, labels: dict[str, dict]) -> list[str]:
    return [name for name in labels if _csv_path(corpus, name) is None]


def _epoch(text: pl.Series, where: str) -> np.ndarray:
    try:
        dt = text.str.strip_chars().str.to_datetime(time_zone="UTC", strict=True)
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
        raise AutopilotError(f"{where}: timestamps are not ISO 8601") from None
    return dt.dt.epoch("ms").to_numpy().astype(np.float64) / 1000.0


def read_series(corpus: Path, name: str, meta: dict) -> CorpusSeries:
    path = _csv_path(corpus, name)
    if path is None:
        raise AutopilotError(
            f"{corpus}: no CSV for series {name!r} (looked for {name}.csv and data/{name}.csv)"
        )
    try:
        df = pl.read_csv(path, schema_overrides={"timestamp": pl.String, "value": pl.Float64})
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AutopilotError(f"{path}: not a readable timestamp,value CSV ({first})") from None
    if not {"timestamp", "value"} <= set(df.columns) or df.height == 0:
        raise AutopilotError(f"{path}: expected columns timestamp,value and at least one row")
    t = _epoch(df["timestamp"], str(path))
    if np.any(np.diff(t) <= 0):
        raise AutopilotError(f"{path}: timestamps must be strictly increasing")
    bounds = _epoch(pl.Series([b for w in meta["windows"] for b in w], dtype=pl.String), f"{name}: windows")
    windows = []
    for lo_t, hi_t in bounds.reshape(-1, 2):
        lo, hi = int(np.searchsorted(t, lo_t, "left")), int(np.searchsorted(t, hi_t, "right")) - 1
        if hi < lo:
            raise AutopilotError(f"{name}: a label window holds no data point")
        windows.append((lo, hi))
    values = df["value"].fill_null(float("nan")).to_numpy().astype(np.float64)
    return CorpusSeries(name, meta["behaviour"], meta["kind"], t, values, tuple(windows))


def load_corpus(corpus: Path) -> list[CorpusSeries]:
    labels = read_labels(corpus)
    return [read_series(corpus, name, meta) for name, meta in labels.items()]


# ------------------------------------------------------------------------------------------------ evaluation


@dataclass
class _Scored:
    series: CorpusSeries
    scores: np.ndarray
    alarms: np.ndarray
    seconds: float
    curve: SweepCurve | None = None


def _group_summary(items: list[_Scored], best: dict[str, float]) -> dict:
    n_windows = sum(len(it.series.windows) for it in items)
    points = sum(it.series.values.size - probation_length(it.series.values.size) for it in items)
    out: dict = {
        "series": len(items),
        "windows": n_windows,
        "points": int(points),
        "seconds": round(sum(it.seconds for it in items), 3),
    }
    own = {
        p: [score_alarms(it.alarms, it.series.windows, PROFILES[p], EPISODE_GAP) for it in items]
        for p in PROFILES
    }
    std = own["standard"]
    out["detected"] = sum(sum(d is not None for d in s.detected) for s in std)
    out["false_alarm_points"] = sum(s.false_alarm_points for s in std)
    out["episodes"] = sum(s.episodes for s in std)
    clean = [s for s in std if s.n_windows == 0]
    clean_points = sum(s.scored_points for s in clean)
    out["clean_episodes_per_1000"] = (
        round(1000.0 * sum(s.episodes for s in clean) / clean_points, 3) if clean_points else None
    )
    scores: dict = {}
    for p, prof in PROFILES.items():
        own_score = normalise(sum(s.raw for s in own[p]), n_windows, prof)
        k = _grid_index(items[0].curve, best[p])
        best_raw = sum(float(it.curve.raw(prof)[k]) for it in items)
        scores[p] = {"own": _num(own_score), "best": _num(normalise(best_raw, n_windows, prof))}
    out["score"] = scores
    return out


def _grid_index(curve: SweepCurve | None, threshold: float) -> int:
    assert curve is not None
    return int(np.flatnonzero(curve.thresholds == threshold)[0])


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 2)


def evaluate_corpus(
    corpus: Iterable[CorpusSeries],
    detector: Detector,
    threshold: float | None = None,
    progress: Callable[[str], None] | None = None,
    own_threshold: float | None = None,
) -> dict:
    """Score every series and summarise: overall, per behaviour, per incident kind, per series (a JSON-able dict).

    ``threshold``: alarms are ``score >= threshold`` instead of the detector's own ``is_anomaly``.
    ``own_threshold``: the detector's shipped threshold, always among the swept ones, so the best threshold
    never scores below the detector's own.
    """
    scored: list[_Scored] = []
    for s in corpus:
        start = time.perf_counter()
        score, flag = detector(s.t_sec, s.values)
        seconds = time.perf_counter() - start
        score = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0)
        alarms = np.asarray(flag, dtype=bool) if threshold is None else score >= threshold
        scored.append(_Scored(s, score, alarms, seconds))
        if progress:
            progress(s.name)
    if not scored:
        raise AutopilotError("the corpus has no series")
    extra = [t for t in (threshold, own_threshold) if t is not None]
    grid = threshold_grid(np.concatenate([it.scores for it in scored]), extra=extra)
    for it in scored:
        it.curve = sweep_curve(it.scores, it.series.windows, grid)
    curves = [it.curve for it in scored if it.curve is not None]
    best: dict[str, float] = {}
    best_report: dict[str, dict] = {}
    for p, prof in PROFILES.items():
        t_best, s_best = best_threshold(curves, prof)
        best[p] = t_best
        best_report[p] = {"threshold": t_best, "score": _num(s_best)}

    def groups(key: Callable[[_Scored], str]) -> dict[str, dict]:
        names = sorted({key(it) for it in scored})
        return {g: _group_summary([it for it in scored if key(it) == g], best) for g in names}

    per_series = []
    for it in scored:
        st = score_alarms(it.alarms, it.series.windows, PROFILES["standard"], EPISODE_GAP)
        per_series.append(
            {
                "name": it.series.name,
                "behaviour": it.series.behaviour,
                "kind": it.series.kind,
                "points": int(it.series.values.size),
                "seconds": round(it.seconds, 4),
                "windows": st.n_windows,
                "detected": sum(d is not None for d in st.detected),
                "window_credit": [round(c, 3) for c in st.credit],  # 1 at a window's start, 0 when missed
                "false_alarm_points": st.false_alarm_points,
                "episodes": st.episodes,
                "raw_standard": round(st.raw, 4),
            }
        )
    return {
        "alarm_rule": "is_anomaly" if threshold is None else f"anomaly_score >= {threshold}",
        "episode_gap_points": EPISODE_GAP,
        "overall": _group_summary(scored, best),
        "best_threshold": best_report,
        "by_behaviour": groups(lambda it: it.series.behaviour),
        "by_kind": groups(lambda it: it.series.kind),
        "series": per_series,
    }


# --------------------------------------------------------------------------------------------------- tables


_SHORT = {"standard": "standard", "reward_low_FP": "low FP", "reward_low_FN": "low FN"}


def report_tables(report: dict) -> list:
    """The report as rich tables: per behaviour, per incident kind, and the overall line."""
    from rich.table import Table

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"

    def table(title: str, rows: dict[str, dict]) -> Table:
        tab = Table(title=title, title_justify="left")
        tab.add_column(title.split(" ")[0].lower())
        for col in ("series", "windows", "found"):
            tab.add_column(col, justify="right")
        for p in PROFILES:
            tab.add_column(f"{_SHORT[p]}\nown / best", justify="right")
        tab.add_column("false-alarm\npoints", justify="right")
        tab.add_column("clean: alarm\nepisodes / 1k", justify="right")
        tab.add_column("ms per\nseries", justify="right")
        for name, g in rows.items():
            clean = g["clean_episodes_per_1000"]
            tab.add_row(
                name,
                str(g["series"]),
                str(g["windows"]),
                str(g["detected"]),
                *(f"{fmt(g['score'][p]['own'])} / {fmt(g['score'][p]['best'])}" for p in PROFILES),
                str(g["false_alarm_points"]),
                "" if clean is None else f"{clean:.2f}",
                f"{1000 * g['seconds'] / g['series']:.0f}",
            )
        return tab

    best = ", ".join(f"{p} {v['threshold']:.8g}" for p, v in report["best_threshold"].items())
    overall = table(
        f"Overall (alarm: {report['alarm_rule']}; best thresholds: {best})", {"all": report["overall"]}
    )
    return [
        table("Behaviour (normalised NAB score: 100 perfect, 0 silent)", report["by_behaviour"]),
        table("Kind of incident", report["by_kind"]),
        overall,
    ]
