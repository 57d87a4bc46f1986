"""The causal anomaly detector the pipeline uses (aiops.detector): its contract (score, causality, each
anomaly kind, the seed shape) and the CLI. Behaviour-by-behaviour tests are in test_detector.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from numpy.testing import assert_allclose
from scipy.signal import lfilter

from autopilot_pipeline.aiops import detector
from autopilot_pipeline.aiops.detector import DetectorConfig, detect_anomalies, score_batch, score_series
from autopilot_pipeline.aiops.detector_season import detect_periods
from autopilot_pipeline.cli import main

T0 = datetime(2025, 1, 6, tzinfo=UTC)


def _times(n: int, step: timedelta = timedelta(minutes=5)) -> list[datetime]:
    return [T0 + i * step for i in range(n)]


def _noise(n: int, seed: int = 0, level: float = 100.0, sd: float = 2.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0, sd, n)


def _flags(values: np.ndarray, step: timedelta = timedelta(minutes=5), **cfg) -> pl.DataFrame:
    return score_series(_times(values.size, step), values, DetectorConfig(**cfg))


# ------------------------------------------------------------------------------------------ the score map


def test_confidence_is_half_at_threshold_monotone_and_bounded() -> None:
    """The old Hill map of a robust z is gone: anomaly_score is 1 - p. The seed's confidence keeps its
    reading (0.5 at the decision threshold, rising with the evidence) as a map of p / alpha."""
    p = np.logspace(-30, 0, 301)
    c = detector.confidence(p)
    assert np.all(np.diff(c) < 0) and np.all((c > 0) & (c < 1))
    assert_allclose(detector.confidence(detector.ALPHA), 0.5)
    assert detector.THRESHOLD == 1 - detector.ALPHA


# ------------------------------------------------------------------------------------------- causality


@pytest.mark.parametrize("cut", [40, 127, 128, 129, 400, 1100])
def test_future_values_do_not_change_past_scores(cut: int) -> None:
    n = 1500
    i = np.arange(n)
    x = 100 + 10 * np.sin(2 * np.pi * i / 48) + np.random.default_rng(3).normal(0, 1, n)
    x[700] += 15
    base = score_series(_times(n), x)
    y = x.copy()
    y[cut + 1 :] = np.random.default_rng(4).normal(500, 80, n - cut - 1)  # wild future
    other = score_series(_times(n), y)
    for col in ("anomaly_score", "robust_z", "expected_value", "is_anomaly"):
        a, b = base[col].to_numpy()[: cut + 1], other[col].to_numpy()[: cut + 1]
        assert np.array_equal(a, b, equal_nan=True), col


def test_series_in_a_batch_do_not_affect_each_other() -> None:
    x = _noise(600, 1)
    alone = score_batch(x[:, None])
    both = score_batch(np.column_stack([x, _noise(600, 2) * 50]))
    assert_allclose(alone.p[:, 0], both.p[:, 0], rtol=1e-9)  # up to SIMD rounding of exp/log


# ------------------------------------------------------------------------------------- what it detects


def test_min_history_gate_scores_zero() -> None:
    x = _noise(200)
    x[5] += 100
    out = _flags(x, min_history=30)
    assert (out["anomaly_score"][:30] == 0).all() and not out["is_anomaly"][:30].any()


def test_spike_detected_without_false_alarms() -> None:
    x = _noise(3000, 5)
    x[2000] += 20  # 10 sd
    out = _flags(x)
    flagged = np.flatnonzero(out["is_anomaly"].to_numpy())
    assert 2000 in flagged
    assert flagged.size <= 3
    assert out["reason"][2000].startswith("Value is far above its expected value")


def test_level_shift_flagged_briefly_then_adopted() -> None:
    x = _noise(3000, 6)
    x[1500:] += 16  # 8 sd, permanent
    flag = _flags(x)["is_anomaly"].to_numpy()
    assert flag[1500:1505].any()
    assert flag[1500:].sum() <= 8  # the new level becomes normal
    assert flag[1600:].sum() == 0


def test_variance_change_detected() -> None:
    """One episode (the old detector flagged several points of the same change)."""
    x = _noise(3000, 7)
    x[2000:2100] += np.random.default_rng(8).normal(0, 12, 100)
    flag = _flags(x)["is_anomaly"].to_numpy()
    assert flag[2000:2100].sum() == 1
    assert flag[:2000].sum() == 0


def test_seasonal_context_anomaly_detected() -> None:
    """A value normal for the night but not for the daily peak: only a seasonal baseline sees it."""
    n = 24 * 40
    i = np.arange(n)
    x = 100 + 30 * np.sin(2 * np.pi * i / 24) + np.random.default_rng(9).normal(0, 2, n)
    peak = 24 * 30 + 6  # sin peak at hour 6
    x[peak] = 72.0  # inside the global range [68, 132], far from the expected ~130
    out = _flags(x, step=timedelta(hours=1))
    assert out["is_anomaly"][peak]
    assert_allclose(out["expected_value"][peak], 130, atol=6)
    assert out["is_anomaly"].sum() <= 4


def test_error_counts_burst_detected_and_quiet_otherwise() -> None:
    rng = np.random.default_rng(10)
    x = rng.poisson(1.0, 3000).astype(float)
    x[2500:2510] += 12
    flag = _flags(x, step=timedelta(minutes=1))["is_anomaly"].to_numpy()
    assert flag[2500:2510].any()
    assert flag[:2500].sum() <= 3


def test_constant_series_then_change() -> None:
    x = np.full(300, 100.0)
    x[250] = 99.0
    out = _flags(x)
    assert out["is_anomaly"].sum() == 1 and out["is_anomaly"][250]


def test_missing_values_and_input_order() -> None:
    x = _noise(400, 11)
    x[300] += 30
    x[[50, 120]] = np.nan
    ts = _times(400)
    ref = score_series(ts, x)
    assert ref["anomaly_score"][50] == 0 and ref["anomaly_score"][120] == 0 and ref["is_anomaly"][300]
    perm = np.random.default_rng(12).permutation(400)
    shuffled = score_series([ts[k] for k in perm], x[perm])
    assert_allclose(shuffled["anomaly_score"].to_numpy(), ref["anomaly_score"].to_numpy()[perm])


def test_direction_up_ignores_drops() -> None:
    x = _noise(1000, 13)
    x[700] -= 30
    x[800] += 30
    out = _flags(x, direction="up")
    assert out["is_anomaly"][800] and not out["is_anomaly"][700]


def test_period_detection() -> None:
    i = np.arange(2048)
    rng = np.random.default_rng(14)
    cols = np.column_stack(
        [
            np.sin(2 * np.pi * i / 24) + 0.3 * rng.normal(size=i.size),
            np.sin(2 * np.pi * i / 288) + 0.3 * rng.normal(size=i.size),
            lfilter([1.0], [1.0, -0.8], rng.normal(size=i.size)),  # AR(1): persistent, not seasonal
            rng.normal(size=i.size),
        ]
    )
    found = detect_periods(cols).tolist()
    assert found[0] == 24 and abs(found[1] - 288) <= 2 and found[2:] == [0, 0]


def test_pinned_scores_on_fixed_data() -> None:
    """Regression pin: changes to the detector's maths must be deliberate (update docs numbers too)."""
    x = _noise(1000, 42)
    x[900] += 12
    out = _flags(x)
    assert_allclose(out["robust_z"][900], 4.5041514, rtol=1e-6)  # a 6-sigma spike, p ~ 7e-6 after 8 tests
    assert_allclose(out["anomaly_score"][900], 0.99999334, rtol=1e-8)
    assert_allclose(out["expected_value"][900], 99.452887, rtol=1e-6)
    assert out["is_anomaly"].sum() == 1


# ---------------------------------------------------------------------------------- detect_anomalies


def _ops_frame() -> pl.DataFrame:
    n = 24 * 14
    ts = [T0 + timedelta(hours=k) for k in range(n)]
    rng = np.random.default_rng(20)
    hour = np.arange(n) % 24
    latency = 150 + 40 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 8, n)
    latency[300] = 850.0
    ratio = np.clip(0.004 + rng.normal(0, 0.0004, n), 0, 1)
    ratio[310] = 0.05
    uptime = np.full(n, 100.0)
    uptime[320] = 92.0
    parts = []
    for comp in ("api", "web"):
        for metric, v in (("p95_ms", latency), ("error_ratio", ratio), ("uptime_pct", uptime)):
            parts.append(pl.DataFrame({"component": comp, "metric": metric, "bucket_start": ts, "value": v}))
    return pl.concat(parts)


def test_detect_anomalies_seed_shape_and_kinds() -> None:
    found = detect_anomalies(_ops_frame())
    seed_keys = {"isAnomaly", "confidence", "reason", "expectedValue", "actualValue", "severity"}
    assert seed_keys <= set(found.columns) and {"component", "metric", "timestamp"} <= set(found.columns)
    assert found["isAnomaly"].all()
    assert set(found["severity"]) <= {"low", "medium", "high", "critical"}
    assert ((found["confidence"] >= 0.5) & (found["confidence"] <= 1)).all()
    for comp in ("api", "web"):
        mine = found.filter(pl.col("component") == comp)
        hits = {(r["metric"], r["timestamp"]) for r in mine.iter_rows(named=True)}
        assert ("p95_ms", T0 + timedelta(hours=300)) in hits
        assert ("error_ratio", T0 + timedelta(hours=310)) in hits
        assert ("uptime_pct", T0 + timedelta(hours=320)) in hits
        assert mine.height <= 6
    row = found.filter((pl.col("metric") == "p95_ms") & (pl.col("component") == "api")).row(0, named=True)
    assert row["reason"].startswith("Response time is far above its expected value (850 vs ")
    assert row["actualValue"] == 850.0 and 100 < row["expectedValue"] < 250
    assert row["severity"] in {"high", "critical"}


def test_error_ratio_rule_three_times_baseline() -> None:
    """A tripling that the robust z alone would not flag (noisy baseline) is caught by the seed's 3x rule."""
    n = 200
    ts = [T0 + timedelta(hours=k) for k in range(n)]
    v = np.clip(0.02 + np.random.default_rng(21).normal(0, 0.01, n), 0, 1)
    v[150] = 0.07
    frame = pl.DataFrame({"component": "api", "metric": "error_ratio", "bucket_start": ts, "value": v})
    found = detect_anomalies(frame, DetectorConfig(alpha=1e-300))  # the tail test alone would not alarm
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["method"] == "error_ratio" and "x the baseline" in row["reason"]
    assert row["timestamp"] == ts[150]


def test_detect_anomalies_since_and_empty() -> None:
    frame = _ops_frame()
    later = detect_anomalies(frame, since=T0 + timedelta(hours=305))
    assert later["timestamp"].min() >= T0 + timedelta(hours=305)
    assert detect_anomalies(frame.head(0)).height == 0


# ---------------------------------------------------------------------------------------------- the CLI


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cli_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(30)
    lines = ["timestamp,value"]
    for k in range(300):
        v = "" if k == 40 else repr(10 + rng.normal() + (15 if k == 250 else 0))
        lines.append(f"{(T0 + timedelta(minutes=k)).isoformat().replace('+00:00', 'Z')},{v}")
    src = _write(tmp_path / "in.csv", "\n".join(lines) + "\n")
    dst = tmp_path / "out" / "scored.csv"
    assert main(["anomalies", "score", str(src), str(dst)]) == 0
    out = pl.read_csv(dst, infer_schema=False)
    assert out.columns == ["timestamp", "value", "anomaly_score", "is_anomaly"]
    assert out["timestamp"].to_list() == [ln.split(",")[0] for ln in lines[1:]]
    score = out["anomaly_score"].cast(pl.Float64)
    assert ((score >= 0) & (score <= 1)).all()
    assert set(out["is_anomaly"]) <= {"0", "1"} and out["is_anomaly"][250] == "1"
    assert out["value"][40] is None and score[40] == 0
    # full precision: the written text round-trips to the same float as the library computes
    ref = score_series(
        [T0 + timedelta(minutes=k) for k in range(300)],
        [float(x) if x else None for x in (ln.split(",")[1] for ln in lines[1:])],
    )
    assert np.array_equal(score.to_numpy(), ref["anomaly_score"].to_numpy())


def test_cli_epoch_timestamps_and_unsorted(tmp_path: Path) -> None:
    rows = [(1_700_000_000 + 60 * k, 5.0 + (k % 3)) for k in range(120)]
    rows[60], rows[61] = rows[61], rows[60]
    src = _write(tmp_path / "e.csv", "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    dst = tmp_path / "e_out.csv"
    assert main(["anomalies", "score", str(src), str(dst)]) == 0
    out = pl.read_csv(dst)
    assert out.height == 120 and out["timestamp"].to_list() == [t for t, _ in rows]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("timestamp,value\n", "no data rows"),
        ("time,value\n1,2\n", "missing column(s) timestamp"),
        ("timestamp,val\n1,2\n", "missing column(s) value"),
        ("timestamp,value\n2025-01-01T00:00:00,1\nsoon,2\n", "line 3: cannot parse timestamp 'soon'"),
        ("timestamp,value\n1,2\n2,abc\n", "line 3: value 'abc' is not a number"),
        ("timestamp,value\n1,2\n,3\n", "line 3: empty timestamp"),
    ],
)
def test_cli_bad_input_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    src = _write(tmp_path / "bad.csv", content)
    assert main(["anomalies", "score", str(src), str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o.csv").exists()


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["anomalies", "score", str(tmp_path / "nope.csv"), str(tmp_path / "o.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
