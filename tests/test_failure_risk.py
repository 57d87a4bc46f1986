"""Failure risk (aiops/risk.py): seasons, the empirical predictive distribution, calibration against a known
crossing probability, interval coverage, causality, and the corpus backtest end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from numpy.testing import assert_allclose

from autopilot_pipeline import cli
from autopilot_pipeline.aiops import risk, risk_backtest
from autopilot_pipeline.aiops.failure_prediction import predict_failures
from autopilot_pipeline.aiops.seasons import detect_seasons

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _daily(n: int, seed: int, weekend: float = 1.0, ar: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    noise = np.zeros(n)
    for k in range(1, n):
        noise[k] = ar * noise[k - 1] + rng.normal(0, 2.0)
    quiet = np.where((i // 24) % 7 >= 5, weekend, 1.0)
    return 100 + quiet * (20 * np.sin(2 * np.pi * i / 24) + 30) + noise


def test_seasons_are_detected_not_assumed() -> None:
    rng = np.random.default_rng(0)
    assert detect_seasons(_daily(504, 1)) == (24,)
    assert detect_seasons(_daily(504, 2, weekend=0.4)) == (24, 168)
    assert detect_seasons(np.cumsum(rng.normal(0, 1, 504))) == ()
    assert detect_seasons(rng.normal(0, 1, 504)) == ()
    assert detect_seasons(_daily(300, 3, weekend=0.4)) == (24,)  # under two weeks: no weekly claim


def test_ets_recursion_matches_statsmodels_forecast() -> None:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _daily(300, 4)
    for season in (24, None):
        kw = {"seasonal": "add", "seasonal_periods": season} if season else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ETSModel(
                y, error="add", trend="add", damped_trend=True, initialization_method="heuristic", **kw
            ).fit(disp=False, maxiter=200)
        assert_allclose(risk._ets_paths(y, season, 24)[-1], res.forecast(24), rtol=1e-9)


def _walk_truth(d: float, sd: float, h: int = 24, n: int = 200_000) -> float:
    """P(max of a Gaussian random walk over h steps > d), by Monte Carlo (the discrete reflection principle
    has no closed form; its continuous limit 2 (1 - Phi(d / (sd sqrt h))) is an upper bound)."""
    steps = np.random.default_rng(99).normal(0, sd, (n, h))
    return float((np.cumsum(steps, axis=1).max(axis=1) > d).mean())


def test_crossing_risk_of_a_random_walk_matches_the_known_probability() -> None:
    """One random walk: the raw risk at thresholds 1, 2 and 3 sd*sqrt(24) above the last value."""
    sd = 1.0
    y = 50 + np.cumsum(np.random.default_rng(5).normal(0, sd, 504))
    fc = risk.risk_forecast(y)
    assert fc.seasons == ()
    for k in (0.5, 1.0, 2.0):
        d = k * sd * np.sqrt(24)
        truth = _walk_truth(d, sd)
        assert abs(fc.raw_risk(y[-1] + d, "above") - truth) < 0.08, (k, truth)
        assert abs(fc.raw_risk(y[-1] - d, "below") - truth) < 0.08, (k, truth)
    assert fc.raw_risk(y[-1] + 20 * sd * np.sqrt(24), "above") < 1e-6


def test_stated_risk_matches_crossing_frequency_over_many_walks() -> None:
    """Calibration in the large: over 120 independent walks, with thresholds whose true crossing probability
    is known (about 0.3), the mean stated risk matches the observed crossing frequency and the truth."""
    sd, n = 1.0, 240
    d = 1.1 * sd * np.sqrt(24)
    truth = _walk_truth(d, sd)
    stated, events = [], []
    for seed in range(120):
        y = np.cumsum(np.random.default_rng(1000 + seed).normal(0, sd, n + 24))
        fc = risk.risk_forecast(y[:n])
        stated.append(fc.raw_risk(y[n - 1] + d, "above"))
        events.append(bool((y[n:] > y[n - 1] + d).any()))
    assert abs(np.mean(stated) - truth) < 0.05, (np.mean(stated), truth)
    assert abs(np.mean(events) - np.mean(stated)) < 0.12  # binomial s.e. of 120 events: about 0.04


def test_platt_calibration_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(3)
    raw = rng.uniform(0.001, 0.999, 20_000)
    truth = 1 / (1 + np.exp(-(0.6 * np.log(raw / (1 - raw)) - 0.4)))  # an over-confident, biased score
    event = rng.uniform(size=raw.size) < truth
    h = 24
    cal = risk.fit_calibration(raw, event, np.zeros((raw.size, h)), np.ones((raw.size, 4, h)), fitted_on="t")
    grid = np.linspace(0.02, 0.98, 25)
    want = 1 / (1 + np.exp(-(0.6 * np.log(grid / (1 - grid)) - 0.4)))
    assert np.max(np.abs(cal.risk(grid) - want)) < 0.03
    assert np.all(np.diff(cal.risk(np.linspace(0, 1, 101))) >= 0)


def test_intervals_cover_nominally_at_every_horizon_on_seasonal_data() -> None:
    """Uncalibrated empirical intervals on AR(1) + daily season: coverage near nominal at each hour."""
    y = _daily(24 * 40, 7)
    ident = risk.Calibration.identity()
    in80 = np.zeros(24)
    in95 = np.zeros(24)
    origins = range(504, y.size - 24, 12)
    for o in origins:
        fc = risk.risk_forecast(y[o - 504 : o])
        fut = y[o : o + 24]
        lo, hi = fc.interval(0.8, ident)
        in80 += (fut >= lo) & (fut <= hi)
        lo, hi = fc.interval(0.95, ident)
        in95 += (fut >= lo) & (fut <= hi)
    n = len(origins)
    assert np.all(np.abs(in80 / n - 0.8) < 0.2) and abs(in80.sum() / (24 * n) - 0.8) < 0.07
    assert np.all(in95 / n > 0.8) and abs(in95.sum() / (24 * n) - 0.95) < 0.04


def test_replay_is_causal() -> None:
    """Changing the values after an origin changes nothing the model stated at that origin."""
    y = _daily(24 * 30, 8)
    series = {"values": y, "threshold": 160.0, "direction": "above"}
    other = {**series, "values": np.concatenate([y[:600], y[600:] + 40.0])}
    a = risk_backtest.replay_series(series, warmup_hours=504, history_hours=504, step_hours=48)
    b = risk_backtest.replay_series(other, warmup_hours=504, history_hours=504, step_hours=48)
    before = a["origin"] <= 600
    assert before.sum() >= 2 and (~before).any()
    for key in ("raw", "share", "clim", "quantiles"):
        assert_allclose(a[key][before], b[key][before])
    assert not np.allclose(a["raw"][~before], b["raw"][~before])


def test_predict_failures_keeps_the_seed_shape_and_adds_risk_fields() -> None:
    n = 24 * 22
    hours = [T0 + timedelta(hours=k) for k in range(n)]
    y = _daily(n, 9) / 2  # peaks near 90-95
    preds = predict_failures(
        pl.DataFrame({"component": "db", "metric": "cpu_pct", "bucket_start": hours, "value": y})
    )
    (p,) = preds
    assert list(p)[:4] == ["prediction", "probability", "timeframe", "recommendations"]
    assert p["riskScore"] == p["probability"] and p["riskName"] in ("risk score", "probability")
    assert p["seasons"] == [24] and p["method"] == "ETS(A,Ad,A)24"
    assert 0.0 <= p["rawRisk"] <= 1.0 and len(p["forecast"]) == 24
    f = p["forecast"][0]
    assert f["lower_95"] <= f["lower_80"] <= f["forecast"] <= f["upper_80"] <= f["upper_95"]


def _corpus(tmp_path: Path) -> Path:
    out = tmp_path / "corpus"
    subprocess.run(
        [sys.executable, str(ROOT / "bench/anomaly_corpus/failures.py"), "--out", str(out), "--per-set", "1"],
        check=True,
        capture_output=True,
    )
    return out


def test_corpus_generator_is_deterministic_and_declares_its_split(tmp_path: Path) -> None:
    out = _corpus(tmp_path)
    again = tmp_path / "again"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/anomaly_corpus/failures.py"),
            "--out",
            str(again),
            "--per-set",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    m = json.loads((out / "failures.json").read_text())
    assert (out / "failures.json").read_text() == (again / "failures.json").read_text()
    assert {s["split"] for s in m["series"]} == {"calibration", "heldout"}
    assert m["splits"]["calibration"]["seed"] != m["splits"]["heldout"]["seed"]
    rare = [s for s in m["series"] if s["set"] == "rare"]
    assert rare and all(s["designed_day_share"] <= 0.2 for s in rare)
    first = m["series"][0]["file"]
    assert (out / first).read_text() == (again / first).read_text()
    # --first-index writes new series; a series is the same whatever corpus it was written in
    later = tmp_path / "later"
    script = str(ROOT / "bench/anomaly_corpus/failures.py")
    subprocess.run(
        [sys.executable, script, "--out", str(later), "--per-set", "2", "--first-index", "1"],
        check=True,
        capture_output=True,
    )
    names = {s["name"] for s in json.loads((later / "failures.json").read_text())["series"]}
    assert not names & {s["name"] for s in m["series"]}
    wide = tmp_path / "wide"
    subprocess.run(
        [sys.executable, script, "--out", str(wide), "--per-set", "2"], check=True, capture_output=True
    )
    one = next(n for n in names if n.endswith("-1"))
    assert (later / f"{one}.csv").read_text() == (wide / f"{one}.csv").read_text()


def test_backtest_corpus_runs_end_to_end_and_writes_the_png(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(risk_backtest, "MIN_DECILE", 1)  # every decile counts: this corpus is tiny
    corpus = _corpus(tmp_path)
    png = tmp_path / "img" / "reliability.png"
    saved = tmp_path / "cal.json"
    code = cli.main(
        [
            "backtest",
            "--corpus",
            str(corpus),
            "--png",
            str(png),
            "--step-hours",
            "168",
            "--json",
            "--save-calibration",
            str(saved),
        ]
    )
    out, _err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)["failureRisk"]
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    held = report["heldout"]
    assert len(held["coverage80ByHour"]) == 24 and len(held["coverage95ByHour"]) == 24
    assert {"common", "rare", "all"} <= set(held) and held["all"]["predictions"] == report["series"][
        "heldout"
    ] * 3
    assert report["scoreName"] == ("probability" if report["targetsMet"] else "risk score")
    assert risk.load_calibration(saved).widen_80.size == 24
    assert set(held["worstDecileWithinSet"]) == {"common", "rare"}
    for kind, worst in held["worstDecileWithinSet"].items():  # information beside the pooled target
        counted = [r for r in held[kind]["reliability"] if r["n"] >= risk_backtest.MIN_DECILE]
        assert abs(worst["gap"]) == max(abs(r["gap"]) for r in counted)
    # two fit corpora (here the same one twice) and a check corpus: three reports, one verdict
    code = cli.main(
        ["backtest", "--png", str(png), "--step-hours", "168"]
        + ["--corpus", str(corpus), "--corpus", str(corpus), "--check-corpus", str(corpus)]
    )
    out, _err = capsys.readouterr()
    assert code == 0 and ("Failure risk score" in out or "Failure probability" in out)
    assert "Brier" in out and "coverage by horizon hour" in out and "± " in out  # gaps with their s.e.
    assert "worst decile gap within a set (not a target" in out
    assert out.count("on the held-out split of corpus") == 3 and "on the others (below)" in out
    assert "calibration not fitted on this corpus" in out  # the check corpus
    # a given calibration is reported, not refitted; a second corpus gates targetsMet
    argv = ["backtest", "--corpus", str(corpus), "--png", str(png), "--step-hours", "168", "--json"]
    code = cli.main([*argv, "--use-calibration", str(saved), "--check-corpus", str(corpus)])
    out, _err = capsys.readouterr()
    given = json.loads(out)["failureRisk"]
    assert code == 0 and given["calibrationFitted"] is False
    assert given["series"]["calibration"] == 0  # nothing is fitted, so that split is not replayed
    assert given["otherCorpora"][0]["calibrationFitted"] is False
    assert given["heldout"]["all"]["brier"] == pytest.approx(report["heldout"]["all"]["brier"])
    assert given["targetsMet"] == (given["targetsMetHere"] and given["otherCorpora"][0]["targetsMet"])


def test_backtest_corpus_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code = cli.main(["backtest", "--corpus", str(tmp_path / "missing")])
    _out, err = capsys.readouterr()
    assert code == 2 and err.startswith("autopilot: error:") and len(err.strip().splitlines()) == 1
    code = cli.main(["backtest", "--corpus", str(tmp_path)])
    _out, err = capsys.readouterr()
    assert code == 2 and "failures.json" in err and "Traceback" not in err


@pytest.mark.parametrize("bad", [[1.0, 2.0], [1.0, float("nan"), 2.0, 3.0]])
def test_bad_history_is_a_clear_error(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="at least 3 finite"):
        risk.risk_forecast(np.array(bad))


def test_risk_map_recovers_a_known_crossing_probability_with_base_rate() -> None:
    """Events drawn from a known probability that bends in the log-odds (slope 0.4, then 1.2 above a raw
    share of 0.95) and rises with the history's base rate: the fitted map states that probability."""
    from autopilot_pipeline.aiops import risk_map

    rng = np.random.default_rng(11)
    n = 60_000
    x = rng.uniform(-8, 8, n)
    raw = 1 / (1 + np.exp(-x))
    base = rng.choice([0.03, 0.1, 0.3, 0.5], n)

    def truth(x: np.ndarray, base: np.ndarray) -> np.ndarray:
        z = -0.3 + 0.4 * x + 0.8 * np.maximum(x - 3.0, 0.0) + 0.5 * risk_map.logit(base)
        return 1 / (1 + np.exp(-z))

    event = rng.uniform(size=n) < truth(x, base)
    cal = risk.fit_calibration(
        raw, event, np.zeros((n, 1)), np.ones((n, 4, 1)), base=base, fitted_on="synthetic"
    )
    assert cal.knots == risk_map.KNOTS and 0.35 < cal.base_coef < 0.65
    grid = np.linspace(-7, 7, 57)
    for b in (0.03, 0.3):
        stated = cal.risk(1 / (1 + np.exp(-grid)), np.full(grid.size, b))
        assert np.max(np.abs(stated - truth(grid, np.full(grid.size, b)))) < 0.03, b
        assert np.all(np.diff(stated) >= 0)  # monotone in the raw risk
    back = risk.Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert_allclose(
        back.risk(np.array([0.01, 0.5, 0.99]), 0.1), cal.risk(np.array([0.01, 0.5, 0.99]), 0.1), atol=1e-5
    )
    with pytest.raises(ValueError, match="base rate"):
        cal.risk(0.5)


def test_an_older_platt_calibration_file_still_loads(tmp_path: Path) -> None:
    old = {"widen80": [1.0] * 24, "widen95": [1.0] * 24, "plattA": 0.5, "plattB": -0.4, "targetsMet": False}
    (tmp_path / "c.json").write_text(json.dumps(old))
    cal = risk.load_calibration(tmp_path / "c.json")
    assert cal.risk(0.5) == pytest.approx(1 / (1 + np.exp(0.4)))


def test_history_base_rate_counts_windows_and_shrinks_towards_one_half() -> None:
    from autopilot_pipeline.aiops import risk_map

    hit = np.zeros(24 * 20, dtype=bool)
    assert risk_map.history_rate(hit) == pytest.approx(0.5 / 21)
    hit[100] = True  # one crossing: in 24 of the 457 complete 24-hour windows
    m = hit.size / 24
    assert risk_map.history_rate(hit) == pytest.approx((24 / 457 * m + 0.5) / (m + 1))
    assert risk_map.history_rate(np.zeros(0, dtype=bool)) == 0.5


def test_decile_standard_error_is_binomial_for_independent_forecasts() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 1, 20_000)
    ev = (rng.uniform(size=p.size) < p).astype(float)
    rows = risk_backtest._reliability(p, ev, np.arange(p.size))
    assert len(rows) == 10
    for r in rows:
        assert abs(r["gap"]) < 4 * r["gapSE"]  # calibrated by construction
        assert 0.7 < r["gapSE"] / r["gapSEBinomial"] < 1.3
    # one series repeated 20 times (perfectly correlated forecasts): the error is far larger
    rows_c = risk_backtest._reliability(
        np.repeat(p[:1000], 20), np.repeat(ev[:1000], 20), np.repeat(np.arange(1000), 20)
    )
    assert all(rc["gapSE"] > 3 * rc["gapSEBinomial"] for rc in rows_c)


def test_map_with_slopes_by_base_rate_recovers_a_known_crossing_probability() -> None:
    """Events whose log-odds slope in the raw risk depends on the history's base rate (0.3 for a rare
    series, 0.9 for a common one, linear in base_weight between): the map with slopes by base rate states
    that probability, stays monotone in the raw risk, and survives its JSON round trip; the plain map
    cannot (one slope for all)."""
    from autopilot_pipeline.aiops import risk_map

    rng = np.random.default_rng(12)
    n = 80_000
    x = rng.uniform(-7, 7, n)
    raw = 1 / (1 + np.exp(-x))
    base = rng.choice([0.02, 0.08, 0.2, 0.5], n)

    def truth(x: np.ndarray, base: np.ndarray) -> np.ndarray:
        u = risk_map.base_weight(base)
        z = -0.4 + (0.3 * (1 - u) + 0.9 * u) * x + 0.4 * risk_map.logit(base)
        return 1 / (1 + np.exp(-z))

    event = rng.uniform(size=n) < truth(x, base)
    h = 1
    args = (raw, event, np.zeros((n, h)), np.ones((n, 4, h)))
    cal = risk.fit_calibration(*args, base=base, fitted_on="synthetic", by_base=True)
    plain = risk.fit_calibration(*args, base=base, fitted_on="synthetic")
    assert cal.slopes.size == 2 * (len(cal.knots) + 1)
    grid = np.linspace(-6, 6, 49)
    worst_plain = 0.0
    for b in (0.02, 0.5):
        want = truth(grid, np.full(grid.size, b))
        stated = cal.risk(1 / (1 + np.exp(-grid)), np.full(grid.size, b))
        assert np.max(np.abs(stated - want)) < 0.03, b
        assert np.all(np.diff(stated) >= 0)
        worst_plain = max(worst_plain, np.max(np.abs(plain.risk(1 / (1 + np.exp(-grid)), b) - want)))
    assert worst_plain > 0.08  # a single set of slopes cannot state both
    back = risk.Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert_allclose(
        back.risk(np.array([0.01, 0.5, 0.99]), 0.1), cal.risk(np.array([0.01, 0.5, 0.99]), 0.1), atol=1e-5
    )


def test_calibration_is_fitted_on_the_calibration_splits_of_several_corpora_only(tmp_path: Path) -> None:
    """fit_corpora pools the calibration splits and never reads a held-out one: changing every held-out
    series changes nothing; a corpus that is only checked needs no calibration split; every corpus gates
    targetsMet."""
    corpus = risk_backtest.load_corpus(_corpus(tmp_path))
    kw = {"step_hours": 168}
    reps = risk_backtest.replay_corpus(corpus, **kw)
    cal = risk_backtest.fit_corpora([(corpus, reps), (corpus, reps)])
    garbled = [
        {**r, "event": ~r["event"], "raw": 1 - r["raw"]} if s["split"] == "heldout" else r
        for s, r in zip(corpus, reps, strict=True)
    ]
    again = risk_backtest.fit_corpora([(corpus, garbled), (corpus, reps)])
    assert again.intercept == pytest.approx(cal.intercept)
    assert_allclose(again.slopes, cal.slopes)
    assert_allclose(again.widen_80, cal.widen_80)
    held = [s for s in corpus if s["split"] == "heldout"]
    only = risk_backtest.load_corpus(_corpus(tmp_path / "again"), "heldout")  # one split read alone
    assert [s["name"] for s in only] == [s["name"] for s in held]
    assert all(np.array_equal(a["values"], b["values"]) for a, b in zip(only, held, strict=True))
    held_reps = [r for s, r in zip(corpus, reps, strict=True) if s["split"] == "heldout"]
    check = risk_backtest.corpus_backtest(held, replays=held_reps, calibration=cal, fitted_here=False)
    main = risk_backtest.corpus_backtest(corpus, replays=reps, calibration=cal, fitted_here=True)
    assert main.summary["calibrationFitted"] and not check.summary["calibrationFitted"]
    assert check.summary["series"]["calibration"] == 0
    both = risk_backtest.with_checks(main, [("check", check)])
    assert both.summary["targetsMet"] == (main.summary["targetsMet"] and check.summary["targetsMet"])
    assert both.summary["otherCorpora"][0]["corpus"] == "check"
    with pytest.raises(ValueError, match="too short"):
        risk_backtest.corpus_backtest(held, replays=held_reps)  # nothing to fit on


def test_weighted_calibration_equals_one_fitted_on_repeated_forecasts() -> None:
    """A forecast of weight 2 counts as that forecast twice, in the map's likelihood and in the intervals'
    coverage (weights are relative: scaling them all changes nothing)."""
    rng = np.random.default_rng(5)
    n, h = 3_000, 3
    raw = rng.uniform(0.01, 0.99, n)
    base = rng.uniform(0.05, 0.5, n)
    event = rng.uniform(size=n) < raw**1.5
    residual = rng.standard_t(4, (n, h))
    q = np.broadcast_to(np.array([-2.0, -1.3, 1.3, 2.0])[None, :, None], (n, 4, h))
    twice = rng.uniform(size=n) < 0.3
    weight = np.where(twice, 2.0, 1.0)
    rep = np.concatenate([np.arange(n), np.flatnonzero(twice)])
    fit = risk.fit_calibration(raw, event, residual, q, base=base, fitted_on="w", weight=weight * 7.0)
    dup = risk.fit_calibration(raw[rep], event[rep], residual[rep], q[rep], base=base[rep], fitted_on="dup")
    probe = np.linspace(0.02, 0.98, 25)
    assert_allclose(fit.risk(probe, np.full(25, 0.2)), dup.risk(probe, np.full(25, 0.2)), atol=2e-3)
    assert_allclose(fit.widen_80, dup.widen_80)
    assert_allclose(fit.widen_95, dup.widen_95)
    with pytest.raises(ValueError, match="weights"):
        risk.fit_calibration(raw, event, residual, q, base=base, fitted_on="w", weight=-weight)


def test_pooled_corpora_count_equally_whatever_their_size(tmp_path: Path) -> None:
    """fit_corpora weights each corpus by 1 / its forecasts: a corpus given twice over (the same replays
    repeated) weighs what it weighed once, so the calibration is the one fitted on the two corpora once."""
    corpus = risk_backtest.load_corpus(_corpus(tmp_path))
    reps = risk_backtest.replay_corpus(corpus, step_hours=168)
    flipped = [{**r, "event": ~r["event"]} for r in reps]
    once = risk_backtest.fit_corpora([(corpus, reps), (corpus, flipped)])
    doubled = risk_backtest.fit_corpora([(corpus + corpus, reps + reps), (corpus, flipped)])
    assert doubled.intercept == pytest.approx(once.intercept, abs=1e-4)
    assert_allclose(doubled.slopes, once.slopes, atol=1e-4)
    assert_allclose(doubled.widen_80, once.widen_80)


def test_map_with_band_growth_recovers_a_known_crossing_probability() -> None:
    """Events whose log-odds rise with the forecast's band growth (coefficient 0.45): the fitted map finds
    the coefficient, states the probability, stays monotone in the raw risk, and a file without the
    coefficient (an older calibration) loads as one that ignores the growth."""
    from autopilot_pipeline.aiops import risk_map

    rng = np.random.default_rng(13)
    n, h = 60_000, 4
    x = rng.uniform(-6, 6, n)
    raw = 1 / (1 + np.exp(-x))
    base = rng.choice([0.05, 0.2, 0.5], n)
    g = rng.uniform(0.0, 2.5, n)
    quantiles = np.zeros((n, 4, h))
    quantiles[:, 0, :], quantiles[:, 3, :] = -1.0, 1.0
    quantiles[:, 0, -1], quantiles[:, 3, -1] = -np.exp(g), np.exp(g)  # 95 % band widens by exp(g)
    assert_allclose(risk_map.band_growth(quantiles), g, atol=1e-12)

    def truth(x: np.ndarray, base: np.ndarray, g: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(-1.0 + 0.6 * x + 0.3 * risk_map.logit(base) + 0.45 * g)))

    event = rng.uniform(size=n) < truth(x, base, g)
    cal = risk.fit_calibration(
        raw, event, np.zeros((n, h)), quantiles, base=base, fitted_on="synthetic", use_growth=True
    )
    assert 0.35 < cal.growth_coef < 0.55
    grid = np.linspace(-5, 5, 41)
    for b, gv in ((0.05, 0.2), (0.5, 2.2)):
        stated = cal.risk(1 / (1 + np.exp(-grid)), b, gv)
        assert np.max(np.abs(stated - truth(grid, np.full(grid.size, b), np.full(grid.size, gv)))) < 0.03
        assert np.all(np.diff(stated) >= 0)
    with pytest.raises(ValueError, match="band growth"):
        cal.risk(0.5, 0.2)
    d = cal.to_dict()
    assert risk.Calibration.from_dict(d).growth_coef == pytest.approx(cal.growth_coef, abs=1e-6)
    del d["map"]["bandGrowthCoef"]
    old = risk.Calibration.from_dict(d)
    assert old.growth_coef == 0.0 and 0.0 <= old.risk(0.5, 0.2) <= 1.0


def _failures_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("failures", ROOT / "bench/anomaly_corpus/failures.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_variant_d_spans_the_fitted_and_held_out_ranges_with_its_own_seeds() -> None:
    """Variant d, the wide calibration corpus: every behaviour parameter's declared range covers the base
    calibration range and variant b's held-out range (the two extremes), and its seeds are new, so fitting on
    it reuses no series of the corpora it is checked on."""
    variants = _failures_module().VARIANTS
    wide = variants["d"]["calibration"]
    for key, bounds in wide.items():
        if key == "seed":
            continue
        lo, hi = bounds
        for rng in (variants["base"]["calibration"][key], variants["b"]["heldout"][key]):
            assert lo <= rng[0] and rng[1] <= hi, (key, rng, (lo, hi))
    others = {s["seed"] for name, v in variants.items() if name != "d" for s in v.values()}
    assert not others & {s["seed"] for s in variants["d"].values()}


def test_shipped_calibration_is_the_chosen_monotone_map() -> None:
    """The shipped file carries the map form the backtest fits (risk_backtest.MAP_KNOTS), states a risk that
    never falls as the raw share rises, and rises with the history's base rate."""
    cal = risk.load_calibration()
    assert cal.knots == risk_backtest.MAP_KNOTS and cal.growth_coef == 0.0
    raw = np.linspace(0.0, 1.0, 201)
    for b in (0.02, 0.2, 0.5):
        assert np.all(np.diff(cal.risk(raw, np.full(raw.size, b))) >= 0)
    assert cal.risk(0.5, 0.5) > cal.risk(0.5, 0.02)
    assert cal.widen_80.size == cal.widen_95.size == risk.HORIZON
