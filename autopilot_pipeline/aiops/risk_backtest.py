"""Backtest of the failure risk on a failure-series corpus (``bench/anomaly_corpus/failures.py``). Pure.

Every series is replayed causally: at origins every ``step_hours`` after ``warmup_hours``, the model sees the
``history_hours`` before the origin only and states its risk of crossing the threshold in the next 24 hours
and its intervals. The calibration (:func:`risk.fit_calibration`) is fitted on the replays of the corpus'
``calibration`` split and everything reported is measured on the ``heldout`` split, which has other seeds
and other behaviour parameters:

* Brier score and Brier skill score against climatology (per series, the share of the 24-hour windows
  before the origin that crossed: the base rate learned from the past only), for the "common" and "rare"
  sets separately;
* reliability: observed crossing frequency against the stated risk, by decile of the stated risk;
* empirical coverage of the 80 % and 95 % intervals at every horizon hour 1..24.

Targets (issue 14): skill > 0.2 (common) and > 0.1 (rare); every decile within 5 points; every hour's
coverage within 2 points of nominal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from autopilot_pipeline.aiops import risk_map
from autopilot_pipeline.aiops.parallel import process_map
from autopilot_pipeline.aiops.risk import HORIZON, Calibration, crossed, fit_calibration, risk_forecast

__all__ = [
    "CorpusReport",
    "corpus_backtest",
    "fit_corpora",
    "with_checks",
    "load_corpus",
    "reliability_png",
    "replay_corpus",
    "replay_series",
]

TARGET_SKILL = {"common": 0.2, "rare": 0.1}
TARGET_DECILE = 0.05
TARGET_COVERAGE = 0.02
MIN_DECILE = 30  # predictions a decile needs before its gap counts against the target
# The map that is fitted: the one with the lowest leave-one-corpus-out log loss inside the calibration splits
# of the base corpus and variants b and d (bench/bench_risk_calibration.py; the rule, declared before any
# held-out split was read: lowest LOCO log loss among admissible maps, the fewest inputs within one
# standard error of it). Knots every 2 log-odds units beat every 3 by 0.0006 +- 0.0003. The band-growth input
# scored better still, but raised the risk of young demo series (a healthy component warned half a day
# before its degradation; test_degradation_risk_rises_before_the_outage), so it is not admissible until it
# can be fitted on replays with short histories (docs/AI_OPS_GUIDE.md).
MAP_KNOTS: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)
MAP_BAND_GROWTH = False


def load_corpus(directory: Path, split: str | None = None) -> list[dict]:
    """The manifest's series with their values (``failures.json`` + one ``timestamp,value`` CSV each); with
    ``split``, only that split's series (the other split's files are not read)."""
    manifest = directory / "failures.json"
    if not manifest.exists():
        raise ValueError(
            f"no failures.json in {directory}: generate one with bench/anomaly_corpus/failures.py"
        )
    entries = json.loads(manifest.read_text())["series"]
    if not {e["split"] for e in entries} >= {"calibration", "heldout"}:
        raise ValueError(f"{manifest} needs both a 'calibration' and a 'heldout' split")
    out = []
    for entry in entries:
        if split is None or entry["split"] == split:
            values = pl.read_csv(directory / entry["file"])["value"].cast(pl.Float64).to_numpy()
            out.append({**entry, "values": values})
    return out


def _climatology(hit: np.ndarray, h: int) -> float:
    """Share of the complete h-hour windows in ``hit`` that contain a crossing (0 without one)."""
    if hit.size < h:
        return float(hit.any())
    return float((np.convolve(hit.astype(float), np.ones(h), mode="valid") > 0).mean())


def replay_series(
    series: dict, *, warmup_hours: int = 504, history_hours: int = 504, step_hours: int = 12
) -> dict[str, np.ndarray]:
    """Causal replay of one series: per origin the raw risk, the history's base rate (the map's second
    input, from the same window the model sees), the event, the climatology, the scaled residuals (N, H)
    and the scaled-error quantiles (N, 4, H)."""
    y = np.asarray(series["values"], dtype=np.float64)
    thr, direction = float(series["threshold"]), series["direction"]
    hit = crossed(y, thr, direction)
    rows: dict[str, list] = {
        k: [] for k in ("origin", "raw", "base", "share", "event", "clim", "residual", "quantiles")
    }
    for o in range(warmup_hours, y.size - HORIZON + 1, step_hours):
        lo = max(0, o - history_hours)
        fc = risk_forecast(y[lo:o])
        fut = y[o : o + HORIZON]
        rows["origin"].append(o)
        rows["raw"].append(fc.raw_risk(thr, direction))
        rows["base"].append(risk_map.history_rate(hit[lo:o], HORIZON))
        rows["share"].append(fc.path_share(thr, direction))
        rows["event"].append(bool(hit[o : o + HORIZON].any()))
        rows["clim"].append(_climatology(hit[:o], HORIZON))
        rows["residual"].append((fut - fc.mean) / fc.scale)
        rows["quantiles"].append(fc.z_quantiles())
    return {k: np.asarray(v) for k, v in rows.items()}


def _replay(args: tuple[dict, dict]) -> dict[str, np.ndarray]:
    series, kw = args
    return replay_series(series, **kw)


@dataclass(frozen=True)
class CorpusReport:
    calibration: Calibration
    summary: dict  # the JSON report
    reliability: pl.DataFrame  # set, decile, n, stated, observed (held-out, calibrated)

    def to_dict(self) -> dict:
        return self.summary


def _brier(p: np.ndarray, ev: np.ndarray) -> float:
    return float(np.mean((p - ev) ** 2)) if p.size else math.nan


def _reliability(p: np.ndarray, ev: np.ndarray, series: np.ndarray) -> list[dict]:
    """Observed vs stated by decile, with the standard error of the gap. The forecasts of one series are
    correlated (origins 12 h apart, 24-hour horizons overlap), so the error is the cluster-robust one with
    the series as clusters, not the binomial one (also given) that treats every forecast as independent."""
    bins = np.minimum((p * 10).astype(int), 9)
    out = []
    for d in range(10):
        m = bins == d
        if m.any():
            n = int(m.sum())
            gap = float(ev[m].mean() - p[m].mean())
            _, cluster = np.unique(series[m], return_inverse=True)
            per_series = np.bincount(cluster, weights=ev[m] - p[m] - gap)
            obs = float(ev[m].mean())
            out.append(
                {
                    "decile": f"{d / 10:.1f}-{(d + 1) / 10:.1f}",
                    "n": n,
                    "seriesCount": int(cluster.max() + 1),
                    "statedRisk": float(p[m].mean()),
                    "observed": obs,
                    "gap": gap,
                    "gapSE": float(np.sqrt(np.sum(per_series**2)) / n),
                    "gapSEBinomial": float(np.sqrt(obs * (1 - obs) / n)),
                }
            )
    return out


def _worst_decile(reliability: list[dict]) -> dict | None:
    """The decile with the largest |gap| among those with at least :data:`MIN_DECILE` forecasts."""
    counted = [r for r in reliability if r["n"] >= MIN_DECILE]
    return max(counted, key=lambda r: abs(r["gap"]), default=None)


def _coverage(res: np.ndarray, q: np.ndarray, cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    h = res.shape[1]
    w80, w95 = cal.widen(0.8, h), cal.widen(0.95, h)
    c80 = ((res >= w80 * q[:, 1]) & (res <= w80 * q[:, 2])).mean(axis=0)
    c95 = ((res >= w95 * q[:, 0]) & (res <= w95 * q[:, 3])).mean(axis=0)
    return c80, c95


def _scores(part: dict[str, np.ndarray], cal: Calibration) -> dict:
    ev = part["event"].astype(float)
    growth = risk_map.band_growth(part["quantiles"])
    risk = np.asarray(cal.risk(part["raw"], part["base"], growth), dtype=np.float64)
    b, braw, bc = _brier(risk, ev), _brier(part["raw"], ev), _brier(part["clim"], ev)
    return {
        "predictions": int(ev.size),
        "baseRate": float(ev.mean()) if ev.size else math.nan,
        "brier": b,
        "brierUncalibrated": braw,
        "brierClimatology": bc,
        "brierSkill": 1 - b / bc if bc > 0 else math.nan,
        "brierSkillUncalibrated": 1 - braw / bc if bc > 0 else math.nan,
        "reliability": _reliability(risk, ev, part["series"]),
    }


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The replays of several series as one, with ``series``: which replay each forecast came from."""
    keys = ("raw", "base", "event", "clim", "residual", "quantiles")
    parts = [p for p in parts if p["raw"].size]
    out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    out["series"] = np.concatenate([np.full(p["raw"].size, id(p)) for p in parts])
    return out


def fit_corpora(
    corpora: list[tuple[list[dict], list[dict[str, np.ndarray]]]], *, fitted_on: str = "calibration split"
) -> Calibration:
    """The calibration fitted on the pooled ``calibration`` splits of several corpora ((series, replays)
    pairs): one generator's processes are one guess at production, several are a wider one, and a map
    fitted on them is less tied to any one of them. Each corpus counts equally (its forecasts are weighted
    by 1 / their number), so the largest calibration split does not decide the map's shape alone. Held-out
    splits are never read here."""
    by_corpus = [
        [r for s, r in zip(corpus, replays, strict=True) if s["split"] == "calibration" and r["raw"].size]
        for corpus, replays in corpora
    ]
    by_corpus = [parts for parts in by_corpus if parts]
    if not by_corpus:
        raise ValueError(
            "the corpora's calibration splits are too short for a replay (need warmup + 24 hours)"
        )
    fit = _concat([r for parts in by_corpus for r in parts])
    sizes = [sum(r["raw"].size for r in parts) for parts in by_corpus]
    weight = np.concatenate([np.full(n, 1.0 / n) for n in sizes])
    return fit_calibration(
        fit["raw"],
        fit["event"],
        fit["residual"],
        fit["quantiles"],
        base=fit["base"],
        fitted_on=fitted_on,
        knots=MAP_KNOTS,
        use_growth=MAP_BAND_GROWTH,
        weight=weight,
    )


def replay_corpus(
    corpus: list[dict],
    *,
    warmup_hours: int = 504,
    history_hours: int = 504,
    step_hours: int = 12,
    workers: int = 1,
) -> list[dict[str, np.ndarray]]:
    """:func:`replay_series` for every series (``workers`` processes; the results do not depend on it)."""
    kw = {"warmup_hours": warmup_hours, "history_hours": history_hours, "step_hours": step_hours}
    jobs = [(s, kw) for s in corpus]
    return process_map(_replay, jobs, workers, chunksize=2)


def corpus_backtest(
    corpus: list[dict],
    *,
    warmup_hours: int = 504,
    history_hours: int = 504,
    step_hours: int = 12,
    workers: int = 1,
    replays: list[dict[str, np.ndarray]] | None = None,
    calibration: Calibration | None = None,
    fitted_here: bool | None = None,
) -> CorpusReport:
    """Replay every series, fit the calibration on the calibration split, report on the held-out split.
    ``replays``: the output of :func:`replay_corpus` with the same arguments, when already computed.
    ``calibration``: report this (already fitted) calibration instead of fitting one, e.g. the shipped
    one on another corpus; ``fitted_here``: whether it was fitted on (among others) this corpus'
    calibration split (:func:`fit_corpora`), which the report says."""
    if replays is None:
        replays = replay_corpus(
            corpus,
            warmup_hours=warmup_hours,
            history_hours=history_hours,
            step_hours=step_hours,
            workers=workers,
        )
    by_split: dict[str, list] = {"calibration": [], "heldout": []}
    by_set: dict[tuple[str, str], list] = {}
    for s, r in zip(corpus, replays, strict=True):
        if r["raw"].size:
            by_split.setdefault(s["split"], []).append(r)
            by_set.setdefault((s["split"], s["set"]), []).append(r)
    if not by_split["heldout"] or (calibration is None and not by_split["calibration"]):
        raise ValueError("the corpus' series are too short for a replay (need warmup + 24 hours)")
    cal = calibration or fit_corpora([(corpus, replays)])
    held = _concat(by_split["heldout"])
    c80, c95 = _coverage(held["residual"], held["quantiles"], cal)
    u80, u95 = _coverage(held["residual"], held["quantiles"], Calibration.identity(held["residual"].shape[1]))
    sets = {k: _scores(_concat(v), cal) for (split, k), v in sorted(by_set.items()) if split == "heldout"}
    overall = _scores(held, cal)
    rel_rows = [{"set": "all", **r} for r in overall["reliability"]]
    for k, v in sets.items():
        rel_rows += [{"set": k, **r} for r in v["reliability"]]
    worst = _worst_decile(overall["reliability"])
    worst_decile = abs(worst["gap"]) if worst else math.nan
    # information, not a target: a map calibrated on the mix can be off within the common or the rare set
    within_set = {
        k: {"gap": w["gap"], "gapSE": w["gapSE"], "decile": w["decile"]}
        for k, v in sets.items()
        if (w := _worst_decile(v["reliability"]))
    }
    checks = {
        **{
            f"brierSkill_{k}": bool(sets[k]["brierSkill"] > TARGET_SKILL[k])
            for k in TARGET_SKILL
            if k in sets
        },
        "reliability": bool(worst_decile <= TARGET_DECILE),
        "coverage80": bool(np.all(np.abs(c80 - 0.8) <= TARGET_COVERAGE)),
        "coverage95": bool(np.all(np.abs(c95 - 0.95) <= TARGET_COVERAGE)),
    }
    met = all(checks.values())
    cal = cal.with_targets(met)
    summary = {
        "scoreName": "probability" if met else "risk score",
        "series": {split: len(v) for split, v in by_split.items()},
        "origins": {"warmupHours": warmup_hours, "historyHours": history_hours, "stepHours": step_hours},
        "heldout": {
            "all": overall,
            **sets,
            "coverage80ByHour": [round(float(v), 4) for v in c80],
            "coverage95ByHour": [round(float(v), 4) for v in c95],
            "coverage80ByHourUncalibrated": [round(float(v), 4) for v in u80],
            "coverage95ByHourUncalibrated": [round(float(v), 4) for v in u95],
            "worstDecileGap": worst_decile,
            "worstDecile": worst["decile"] if worst else None,
            "worstDecileGapSE": worst["gapSE"] if worst else math.nan,
            "worstDecileWithinSet": within_set,
        },
        "calibrationSplit": {
            "predictions": int(sum(r["raw"].size for r in by_split["calibration"])),
            "baseRate": float(np.mean(np.concatenate([r["event"] for r in by_split["calibration"]])))
            if by_split["calibration"]
            else math.nan,
        },
        "calibrationFitted": calibration is None if fitted_here is None else bool(fitted_here),
        "targets": checks,
        "targetsMet": met,
        "calibration": cal.to_dict(),
    }
    return CorpusReport(cal, summary, pl.DataFrame(rel_rows))


def with_checks(report: CorpusReport, others: list[tuple[str, CorpusReport]]) -> CorpusReport:
    """``report`` with the same calibration reported on further corpora (name, report): the other corpora
    it was fitted on and check corpora it never saw (e.g. the generator's variants). The calibration meets
    its targets only if it meets them on every held-out split, which guards against a calibration that
    fits one generator's processes only."""
    met = bool(report.summary["targetsMet"] and all(o.summary["targetsMet"] for _, o in others))
    summary = {
        **report.summary,
        "targetsMetHere": report.summary["targetsMet"],
        "targetsMet": met,
        "scoreName": "probability" if met else "risk score",
        "otherCorpora": [{"corpus": name, **o.summary} for name, o in others],
        "calibration": report.calibration.with_targets(met).to_dict(),
    }
    return CorpusReport(report.calibration.with_targets(met), summary, report.reliability)


def reliability_png(report: CorpusReport, path: Path) -> Path:
    """Reliability diagram of the held-out risk scores (observed frequency vs stated risk by decile)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    ax.fill_between([0, 1], [-0.05, 0.95], [0.05, 1.05], color="0.9", label="target ±5 points")
    styles = {"all": ("k", "o"), "common": ("tab:blue", "s"), "rare": ("tab:orange", "^")}
    for name, (color, marker) in styles.items():
        part = report.reliability.filter(pl.col("set") == name)
        if part.height:
            ax.plot(
                part["statedRisk"],
                part["observed"],
                color=color,
                marker=marker,
                lw=1.2,
                label=f"{name} ({int(part['n'].sum())} forecasts)",
            )
            if name == "all" and "gapSE" in part.columns:  # ±2 standard errors (by series) of each decile
                ax.errorbar(
                    part["statedRisk"],
                    part["observed"],
                    yerr=2 * part["gapSE"].to_numpy(),
                    fmt="none",
                    ecolor=color,
                    elinewidth=0.8,
                    capsize=2,
                    label="all: ±2 s.e. (series as clusters)",
                )
    held = report.summary["heldout"]
    title = report.summary["scoreName"]
    ax.set_title(
        f"24-hour failure {title}, held-out corpus\nBrier skill: common "
        f"{held.get('common', {}).get('brierSkill', math.nan):+.2f}, rare {held.get('rare', {}).get('brierSkill', math.nan):+.2f}",
        fontsize=10,
    )
    ax.set_xlabel(f"stated {title} (decile mean)")
    ax.set_ylabel("observed crossing frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
