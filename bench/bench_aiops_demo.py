"""The AI-ops pipeline scored against the demo generator's ground truth, over many seeded datasets.

    python bench/bench_aiops_demo.py detection     # incidents found, false alarms per component-week
    python bench/bench_aiops_demo.py prediction    # failure-risk lead times, calibration (raw vs cleaned)
    python bench/bench_aiops_demo.py calibration   # only the calibration (coverage, Brier skill)

Everything runs in memory: the generator's raw health_log and metric_samples go through the same core
functions as the health assets (``aiops.evaluation.hourly_series_from_raw``), then through the AI-ops code
the assets run (``aiops.detection.score_window``, ``aiops.forecasting.predict_at``). The datasets are the
demo generator's (``demo/generator.py``), seeds and sizes below; the labels are only read to score. Numbers go to
docs/AI_OPS_GUIDE.md ("Evaluation on the demo data"). ``autopilot backtest`` does the same for one database.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: many tiny statsmodels fits

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import polars as pl  # noqa: E402

from autopilot_pipeline.aiops import evaluation  # noqa: E402
from autopilot_pipeline.aiops.detection import score_window  # noqa: E402
from autopilot_pipeline.aiops.detector import DetectorConfig  # noqa: E402
from autopilot_pipeline.demo.generator import DemoData, generate  # noqa: E402

END = datetime(2026, 3, 4, 15, tzinfo=UTC)
DATASETS = [(seed, days, 6) for seed in range(1, 13) for days in (7, 14)] + [(42, 7, 6)]
VARIANTS = {
    "detector + seed 3x rule": {"alpha": math.inf, "directions": {}},
    "+ binomial gate on the proportions": {"alpha": 1e-3, "directions": {}},
    "+ resources count upwards (default)": {"alpha": 1e-3, "directions": None},
}


def _data(seed: int, days: int, components: int) -> tuple[DemoData, pl.DataFrame, pl.DataFrame]:
    data = generate(days, components, seed, END, app_scale=0.01)
    series = evaluation.hourly_series_from_raw(data.health_log, data.metric_samples)
    counts = evaluation.counts_from_health(data.health_log)
    return data, series, counts


def detection() -> None:
    rows = []
    started = time.perf_counter()
    for seed, days, comps in DATASETS:
        data, series, counts = _data(seed, days, comps)
        first = series["bucket_start"].min()
        for name, kw in VARIANTS.items():
            scores = score_window(series, first, counts=counts, **kw)  # type: ignore[arg-type]
            rep = evaluation.detection_report(
                scores.filter(pl.col("is_anomaly")),
                data.incidents,
                span_start=first + timedelta(hours=DetectorConfig().min_history),  # type: ignore[operator]
                span_end=END,
                components=comps,
            )
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "days": days,
                    "incidents": rep.incidents.height,
                    "detected": rep.detected,
                    "false_alarms": rep.false_alarms,
                    "component_weeks": rep.components * rep.weeks,
                    "missed": ", ".join(rep.to_dict()["missed"]),
                }
            )
    df = pl.DataFrame(rows)
    print(f"{len(DATASETS)} datasets in {time.perf_counter() - started:.1f} s\n")
    summary = df.group_by("variant", maintain_order=True).agg(
        pl.col("detected").sum(),
        pl.col("incidents").sum(),
        (pl.col("false_alarms").sum() / pl.col("component_weeks").sum()).round(2).alias("fa_per_cw"),
        (pl.col("false_alarms") / pl.col("component_weeks")).max().round(2).alias("worst_dataset_fa_per_cw"),
    )
    print("| variant | incidents detected | false alarms / component-week | worst dataset |")
    print("| --- | --- | --- | --- |")
    for r in summary.iter_rows(named=True):
        print(
            f"| {r['variant']} | {r['detected']}/{r['incidents']} | {r['fa_per_cw']} | {r['worst_dataset_fa_per_cw']} |"
        )
    final = df.filter(pl.col("variant") == list(VARIANTS)[-1])
    print(
        "\nmissed by the default:",
        "; ".join(
            f"seed {r['seed']}/{r['days']} d: {r['missed']}"
            for r in final.filter(pl.col("missed") != "").iter_rows(named=True)
        )
        or "none",
    )
    kinds = pl.concat(
        [
            evaluation.detection_report(
                score_window(s, s["bucket_start"].min(), counts=c).filter(pl.col("is_anomaly")),
                d.incidents,
                span_start=s["bucket_start"].min(),  # type: ignore[arg-type]
                span_end=END,
                components=6,
            ).incidents
            for d, s, c in (_data(*ds) for ds in DATASETS)
        ]
    )
    print(
        "by kind (default):",
        ", ".join(
            f"{k} {n}/{t}"
            for k, n, t in kinds.group_by("kind")
            .agg(pl.col("detected").sum(), pl.len())
            .sort("kind")
            .iter_rows()
        ),
    )


def prediction(calibration_sets: int = 6) -> None:
    started = time.perf_counter()
    lead_times()
    calibration(calibration_sets)
    print(f"({time.perf_counter() - started:.0f} s in all)")


def lead_times() -> None:
    started = time.perf_counter()
    leads = []
    for seed, days, comps in DATASETS:
        data, series, counts = _data(seed, days, comps)
        scores = score_window(series, series["bucket_start"].min(), counts=counts)  # type: ignore[arg-type]
        for clean in (False, True):
            for lt in evaluation.failure_lead_times(
                series, data.incidents, scores=scores, clean=clean, n_paths=500
            ):
                leads.append(
                    {
                        "clean": clean,
                        "seed": seed,
                        "days": days,
                        "lead": lt.lead_hours,
                        "found": lt.failure_at is not None,
                    }
                )
    ld = pl.DataFrame(leads).filter(pl.col("found"))
    for clean in (False, True):
        part = ld.filter(pl.col("clean") == clean)
        hit = part.filter(pl.col("lead").is_not_null())
        print(
            f"lead times ({'cleaned' if clean else 'raw'} history): {hit.height}/{part.height} degradations warned "
            f"(risk >= 0.5) before the outage hour; lead {hit['lead'].min()}-{hit['lead'].max()} h, median {hit['lead'].median()} h"
        )
    print(f"({time.perf_counter() - started:.0f} s)\n")


def calibration(calibration_sets: int = 6) -> None:
    """Coverage and Brier skill of the failure risk over the demo's 7-day datasets (origins every 6 h)."""
    started = time.perf_counter()
    rows = []
    for seed, days, comps in [d for d in DATASETS if d[1] == 7][:calibration_sets]:
        data, series, counts = _data(seed, days, comps)
        scores = score_window(series, series["bucket_start"].min(), counts=counts)  # type: ignore[arg-type]
        for clean in (False, True):
            rep = evaluation.calibration_report(series, scores=scores, clean=clean)
            rows.append(
                {
                    "history": "cleaned" if clean else "raw",
                    "seed": seed,
                    **{k: v for k, v in rep.to_dict().items() if k != "perMetric"},
                }
            )
    cal = pl.DataFrame(rows)
    print(
        "| history | predictions | 80 % coverage | 95 % coverage | Brier | Brier climatology | warnings >= 0.5: before a crossing / false |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in (
        cal.group_by("history", maintain_order=True)
        .agg(
            pl.col("predictions").sum(),
            (pl.col("coverage80") * pl.col("predictions")).sum() / pl.col("predictions").sum(),
            (pl.col("coverage95") * pl.col("predictions")).sum() / pl.col("predictions").sum(),
            (pl.col("brier") * pl.col("predictions")).sum() / pl.col("predictions").sum(),
            (pl.col("brierClimatology") * pl.col("predictions")).sum() / pl.col("predictions").sum(),
            pl.col("warnedEvents").sum(),
            pl.col("falseWarnings").sum(),
        )
        .iter_rows(named=True)
    ):
        print(
            f"| {r['history']} | {r['predictions']} | {r['coverage80']:.1%} | {r['coverage95']:.1%} | {r['brier']:.4f} | "
            f"{r['brierClimatology']:.4f} | {r['warnedEvents']} / {r['falseWarnings']} |"
        )
    print(
        f"({calibration_sets} seven-day datasets, origins every 6 h; {time.perf_counter() - started:.0f} s in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("detection", "prediction", "calibration", "all"))
    args = parser.parse_args()
    if args.what in ("detection", "all"):
        detection()
    if args.what in ("prediction", "all"):
        prediction()
    if args.what == "calibration":
        calibration()


if __name__ == "__main__":
    main()
