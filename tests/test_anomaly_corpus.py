"""The labelled anomaly corpus (bench/anomaly_corpus/generate.py) and `autopilot anomalies evaluate`."""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autopilot_pipeline import cli

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "anomaly_corpus"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("anomaly_corpus_generate", CORPUS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(gen):
    return gen.build_corpus()


def test_same_seed_same_bytes_other_seed_other_data(gen, corpus):
    def digest(series):
        return hashlib.sha256("".join(gen.csv_text(s) for s in series).encode()).hexdigest()

    assert digest(gen.build_corpus()) == digest(corpus)
    other = gen.build_corpus(seed=1)
    assert not np.array_equal(other[0].v, corpus[0].v)


def test_committed_labels_are_what_the_generator_writes(gen, corpus):
    committed = json.loads((CORPUS / "labels.json").read_text())
    assert committed == json.loads(json.dumps(gen.labels(corpus, gen.DEFAULT_SEED)))


def test_corpus_covers_the_behaviours_and_incident_kinds(corpus):
    behaviours = {s.behaviour for s in corpus}
    kinds = {s.kind for s in corpus}
    assert len(corpus) >= 40
    assert {
        "daily_season",
        "daily_weekly_season",
        "square_wave",
        "batch_job",
        "zero_inflated_bursty",
        "heavy_tailed_latency",
        "two_level_toggle",
        "slow_growth",
        "sawtooth",
        "poisson_errors",
        "random_walk_memory",
        "irregular_sampling",
    } <= behaviours
    incidents = {"spike", "dip", "level_shift", "variance_change", "pattern_change"}
    incidents |= {"contextual", "drop_to_zero", "flatline", "slow_leak"}
    assert incidents <= kinds
    assert len(behaviours | kinds - {"none"}) >= 14
    assert sum(s.kind == "none" for s in corpus) >= 5
    for s in corpus:
        assert s.behaviour in s.tags


def test_series_shapes_and_label_windows(corpus):
    for s in corpus:
        n = s.t.size
        assert 4000 <= n <= 20_000, s.name
        assert s.interval_s in (60, 300, 3600), s.name
        if s.behaviour != "irregular_sampling":
            assert np.all(np.diff(s.t) == s.interval_s), s.name
        assert np.all(np.diff(s.t) > 0) and np.isfinite(s.v).all(), s.name
        assert (s.kind == "none") == (len(s.windows) == 0), s.name
        if not s.windows:
            continue
        total = sum(hi - lo + 1 for lo, hi in s.windows)
        # 10 % shared among the windows, give or take clipping and (irregular series) dropped samples
        assert 0.07 * n <= total <= 0.12 * n, s.name
        ends = [x for w in s.windows for x in w]
        assert ends == sorted(ends) and ends[0] >= 0.15 * n and ends[-1] < n, s.name
        for a, (lo, hi) in zip(s.anomalies, s.windows, strict=True):
            assert lo <= a["onset"] <= hi and a["kind"] == s.kind, s.name


def test_behaviours_look_like_what_they_claim(corpus):
    by = {}
    for s in corpus:
        by.setdefault((s.behaviour, s.kind), s)
    assert len(np.unique(by[("square_wave", "none")].v)) == 2  # noise-free
    assert np.mean(by[("zero_inflated_bursty", "none")].v == 0) > 0.5
    irregular = by[("irregular_sampling", "none")]
    gaps = np.diff(irregular.t)
    assert gaps.max() > 20 * np.median(gaps) and len(np.unique(gaps)) > 10
    flat = by[("stationary_noise", "flatline")]
    a = flat.anomalies[0]
    assert np.ptp(flat.v[a["onset"] : a["end"]]) == 0 and a["end"] - a["onset"] > 20
    outage = by[("daily_season", "drop_to_zero")]
    a = outage.anomalies[0]
    assert np.all(outage.v[a["onset"] : a["end"]] == 0)


# ------------------------------------------------------------------------------------- the evaluate command


def _write_tiny_corpus(root: Path) -> None:
    """Two 800-point series: a clear spike inside its window, and a clean one."""
    rng = np.random.default_rng(3)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    stamps = [(start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(800)]
    spiky = 50 + rng.normal(0, 1, 800)
    spiky[600] += 40
    clean = 20 + rng.normal(0, 1, 800)
    (root / "data").mkdir(parents=True)
    for name, v in (("spiky", spiky), ("calm", clean)):
        rows = "\n".join(f"{t},{x:.4f}" for t, x in zip(stamps, v, strict=True))
        (root / "data" / f"{name}.csv").write_text(f"timestamp,value\n{rows}\n")
    labels = {
        "series": {
            "spiky": {"behaviour": "flat", "kind": "spike", "windows": [[stamps[560], stamps[639]]]},
            "calm": {"behaviour": "flat", "kind": "none", "windows": []},
        }
    }
    (root / "labels.json").write_text(json.dumps(labels))


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["anomalies", "evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_json_on_a_tiny_corpus(capsys, tmp_path):
    _write_tiny_corpus(tmp_path)
    code, out, _ = _run(capsys, "--corpus", str(tmp_path), "--json")
    assert code == 0
    report = json.loads(out)
    overall = report["overall"]
    assert overall["series"] == 2 and overall["windows"] == 1 and overall["detected"] == 1
    assert set(overall["score"]) == {"standard", "reward_low_FP", "reward_low_FN"}
    for profile in overall["score"].values():
        assert profile["own"] <= 100 and profile["best"] <= 100
    assert report["by_kind"]["none"]["score"]["standard"]["own"] is None  # nothing to normalise by
    assert report["by_kind"]["none"]["clean_episodes_per_1000"] is not None
    assert [s["name"] for s in report["series"]] == ["spiky", "calm"]
    assert 0 < report["series"][0]["window_credit"][0] <= 1 and report["series"][1]["window_credit"] == []
    assert all(s["seconds"] >= 0 for s in report["series"])


def test_evaluate_with_a_threshold_no_detector_reaches_is_silent(capsys, tmp_path):
    _write_tiny_corpus(tmp_path)
    code, out, _ = _run(capsys, "--corpus", str(tmp_path), "--json", "--threshold", "1.5")
    report = json.loads(out)
    assert code == 0 and report["alarm_rule"] == "anomaly_score >= 1.5"
    assert report["overall"]["detected"] == 0
    assert report["overall"]["score"]["standard"]["own"] == 0.0  # silent scores exactly 0


def test_evaluate_prints_tables_in_a_real_process(tmp_path):
    _write_tiny_corpus(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "autopilot_pipeline.cli", "anomalies", "evaluate", "--corpus", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    for heading in ("Behaviour", "Kind of incident", "Overall", "standard", "low FP", "low FN"):
        assert heading in done.stdout


def test_evaluate_runs_the_corpus_generator_when_the_csvs_are_missing(capsys, tmp_path):
    """A corpus directory may carry its own generate.py (as bench/anomaly_corpus does): missing CSVs are made
    first, and what the generator prints does not spoil --json."""
    _write_tiny_corpus(tmp_path / "made")
    data = tmp_path / "made" / "data"
    _write_tiny_corpus(tmp_path / "corpus")
    shutil.rmtree(tmp_path / "corpus" / "data")
    (tmp_path / "corpus" / "generate.py").write_text(
        "import shutil, pathlib\n"
        f"shutil.copytree({str(data)!r}, pathlib.Path(__file__).parent / 'data')\n"
        "print('wrote 2 series')\n"
    )
    code, out, _ = _run(capsys, "--corpus", str(tmp_path / "corpus"), "--json")
    assert code == 0 and json.loads(out)["overall"]["series"] == 2
    assert (tmp_path / "corpus" / "data" / "calm.csv").is_file()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_dir", "does not exist"),
        ("no_labels", "no labels.json"),
        ("bad_json", "not valid JSON"),
        ("bad_shape", "needs 'behaviour' and 'kind'"),
        ("missing_csv", "no CSV for series 'calm'"),
        ("bad_timestamp", "not ISO 8601"),
    ],
)
def test_evaluate_bad_corpus_is_a_one_line_error(capsys, tmp_path, setup, message):
    root = tmp_path / "corpus"
    if setup != "missing_dir":
        _write_tiny_corpus(root)
    if setup == "no_labels":
        (root / "labels.json").unlink()
    elif setup == "bad_json":
        (root / "labels.json").write_text("{not json")
    elif setup == "bad_shape":
        (root / "labels.json").write_text(json.dumps({"series": {"calm": {"windows": [[1]]}}}))
    elif setup == "missing_csv":
        (root / "data" / "calm.csv").unlink()
    elif setup == "bad_timestamp":
        (root / "data" / "calm.csv").write_text("timestamp,value\nyesterday,1\n")
    code, _, err = _run(capsys, "--corpus", str(root))
    assert code == 2
    assert err.startswith("autopilot: error:") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
