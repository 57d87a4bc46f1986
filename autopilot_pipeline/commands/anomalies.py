"""``autopilot anomalies score INPUT.csv OUTPUT.csv``: score any series with the causal anomaly detector.

Input: a CSV with columns ``timestamp`` and ``value`` (others are ignored). Timestamps are ISO 8601 strings
(naive ones are taken as UTC) or epoch numbers (seconds; milli/micro/nanoseconds are recognised by size).
Values may be empty, ``NaN``, ``NA`` or ``null``: such rows are not scored (score 0).
Output: one row per input row, in input order: ``timestamp,value,anomaly_score,is_anomaly`` with the
timestamp and value exactly as given, ``anomaly_score`` in [0, 1] at full precision and ``is_anomaly``
as 0/1: the detector's own decision, the first point of each alarm episode (alarm: ``anomaly_score``
above the threshold, i.e. a tail probability below 1e-4).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from autopilot_pipeline.aiops import corpus_eval
from autopilot_pipeline.aiops.detector import THRESHOLD, DetectorConfig, score_series
from autopilot_pipeline.errors import AutopilotError

_MISSING = {"", "nan", "na", "n/a", "null", "none"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("anomalies", help="score a series with the causal anomaly detector")
    actions = parser.add_subparsers(dest="anomalies_command", metavar="ACTION", required=True)
    score = actions.add_parser(
        "score",
        help="score INPUT.csv (timestamp,value) into OUTPUT.csv (timestamp,value,anomaly_score,is_anomaly)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("input", type=Path, help="CSV with columns timestamp,value")
    score.add_argument("output", type=Path, help="where to write the scored CSV")
    defaults = DetectorConfig()
    score.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help=f"anomaly_score (1 - tail probability) that makes an alarm (default {THRESHOLD})",
    )
    score.add_argument(
        "--min-history",
        type=int,
        default=defaults.min_history,
        help=f"points before any score is given (default {defaults.min_history})",
    )
    score.add_argument(
        "--direction",
        choices=("both", "up", "down"),
        default="both",
        help="which deviations count (default both)",
    )
    score.add_argument(
        "--period",
        type=int,
        default=None,
        help="season length in samples (default: found from the data; 0: none)",
    )
    score.set_defaults(handler=_score)
    evaluate = actions.add_parser(
        "evaluate",
        help="windowed (NAB) score of the detector on a labelled corpus, per behaviour and profile",
        description=corpus_eval.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="directory with labels.json and the series' CSVs (default: bench/anomaly_corpus of this checkout)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument(
        "--threshold", type=float, default=None, help="alarm at anomaly_score >= X instead of is_anomaly"
    )
    evaluate.set_defaults(handler=_evaluate)


def _read(path: Path) -> pl.DataFrame:
    if path.is_dir():
        raise AutopilotError(f"{path} is a folder; give the CSV file to score")
    if not path.is_file():
        raise AutopilotError(f"{path}: no such file")
    try:
        with path.open("rb"):
            pass
    except PermissionError as exc:
        raise AutopilotError(f"cannot read {path}: permission denied; check its permissions") from exc
    if path.stat().st_size == 0:
        raise AutopilotError(f"{path} is empty (expected a header timestamp,value and data rows)")
    try:
        df = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AutopilotError(f"{path}: not a readable CSV ({first})") from None
    df = df.rename({c: c.strip().lower() for c in df.columns})
    missing = [c for c in ("timestamp", "value") if c not in df.columns]
    if missing:
        raise AutopilotError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(df.columns) or 'none'})"
        )
    if df.height == 0:
        raise AutopilotError(f"{path} has a header but no data rows")
    return df.select("timestamp", "value")


def _parse_values(raw: pl.Series, path: Path) -> np.ndarray:
    text = raw.fill_null("").str.strip_chars()
    num = text.cast(pl.Float64, strict=False)
    bad = num.is_null() & ~text.str.to_lowercase().is_in(list(_MISSING))
    if bad.any():
        row = int(bad.arg_max()) + 2
        raise AutopilotError(f"{path}: line {row}: value {text[row - 2]!r} is not a number")
    return num.fill_null(float("nan")).to_numpy().astype(np.float64)


def _epoch_unit_seconds(v: np.ndarray) -> np.ndarray:
    big = float(np.nanmax(np.abs(v))) if v.size else 0.0
    scale = 1e9 if big > 1e17 else 1e6 if big > 1e14 else 1e3 if big > 1e11 else 1.0
    return v / scale


def _parse_timestamps(raw: pl.Series, path: Path) -> np.ndarray:
    text = raw.fill_null("").str.strip_chars()
    empty = text == ""
    if empty.any():
        raise AutopilotError(f"{path}: line {int(empty.arg_max()) + 2}: empty timestamp")
    num = text.cast(pl.Float64, strict=False)
    if num.null_count() == 0:
        return _epoch_unit_seconds(num.to_numpy().astype(np.float64))
    out = np.empty(text.len())
    for i, s in enumerate(text.to_list()):
        try:
            d = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise AutopilotError(
                f"{path}: line {i + 2}: cannot parse timestamp {s!r} (use ISO 8601 or epoch seconds)"
            ) from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=UTC)
        out[i] = d.timestamp()
    if not np.isfinite(out).all():
        raise AutopilotError(f"{path}: timestamps out of range")
    return out


def _score(args: argparse.Namespace) -> int:
    if args.output.is_dir():  # before the work, not after it
        raise AutopilotError(
            f"{args.output} is a folder; give the output file, e.g. {args.output / 'scores.csv'}"
        )
    df = _read(args.input)
    t_sec = _parse_timestamps(df["timestamp"], args.input)
    values = _parse_values(df["value"], args.input)
    if not math.isfinite(args.threshold) or not 0 < args.threshold < 1:
        raise AutopilotError("--threshold must be between 0 and 1 (an anomaly_score)")
    cfg = replace(
        DetectorConfig(),
        alpha=1.0 - args.threshold,
        min_history=args.min_history,
        direction=args.direction,
        period=args.period,
    )
    scored = score_series(pl.Series("timestamp", t_sec), values, cfg)
    out = pl.DataFrame(
        {
            "timestamp": df["timestamp"],
            "value": df["value"],
            "anomaly_score": scored["anomaly_score"],
            "is_anomaly": scored["is_anomaly"].cast(pl.Int8),
        }
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out.write_csv(args.output)
    n_anom = int(scored["is_anomaly"].sum())
    print(f"scored {out.height} rows from {args.input} -> {args.output} ({n_anom} anomalies)")
    return 0


DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "bench" / "anomaly_corpus"


def evaluated_detector(t_sec: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The detector `anomalies evaluate` measures: (anomaly_score, is_anomaly) per point. Swap detectors here."""
    scored = score_series(pl.Series("timestamp", t_sec), values)
    return scored["anomaly_score"].to_numpy(), scored["is_anomaly"].to_numpy()


def _evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if args.threshold is not None and not math.isfinite(args.threshold):
        raise AutopilotError("--threshold must be a finite number")
    corpus = args.corpus
    labels = corpus_eval.read_labels(corpus)
    generator = corpus / "generate.py"
    if corpus_eval.missing_csvs(corpus, labels) and generator.is_file():
        print(f"generating the corpus into {corpus / 'data'} ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, str(generator)], stdout=subprocess.PIPE, text=True, check=False
        )
        print(done.stdout, end="", file=sys.stderr)  # stdout stays clean for --json
        if done.returncode != 0:
            raise AutopilotError(f"{generator} failed (exit {done.returncode})")
        labels = corpus_eval.read_labels(corpus)
    series = [corpus_eval.read_series(corpus, name, meta) for name, meta in labels.items()]
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scoring", total=len(series))
        report = corpus_eval.evaluate_corpus(
            series,
            evaluated_detector,
            args.threshold,
            progress=lambda _name: bar.advance(task),
            own_threshold=THRESHOLD,
        )
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    out = Console() if sys.stdout.isatty() else Console(width=160)  # a file or pipe gets whole rows
    for table in corpus_eval.report_tables(report):
        out.print(table)
    return 0
