"""The AI-ops process pool: the anomaly scoring and the failure predictions give the same result in worker
processes as in one, and the ``workers`` setting parses and reaches the Dagster config."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from autopilot_pipeline.aiops.detection import detect_batched, score_window
from autopilot_pipeline.aiops.detector import detect_anomalies
from autopilot_pipeline.aiops.failure_prediction import predict_failures
from autopilot_pipeline.aiops.parallel import default_workers, process_map, split_series, worth_a_pool
from autopilot_pipeline.aiops.settings import AiopsSettings
from autopilot_pipeline.defs.aiops.resources import AiopsConfig, AiopsResource

START = np.datetime64("2026-01-01T00:00:00", "us")


def _fleet(components: int = 5, hours: int = 400, seed: int = 3) -> pl.DataFrame:
    """Hourly latency and error-ratio series with a daily season, a few spikes and a level shift each."""
    rng = np.random.default_rng(seed)
    i = np.arange(hours)
    parts = []
    for c in range(components):
        lat = 120 + 25 * np.sin(2 * np.pi * (i + 3 * c) / 24) + rng.normal(0, 4, hours)
        lat[rng.integers(hours // 4, hours, 3)] += 90
        lat[3 * hours // 4 + c :] += 40
        err = np.clip(0.01 + rng.normal(0, 0.002, hours), 0, 1)
        err[rng.integers(hours // 4, hours, 2)] += 0.08
        ts = START + (i * 3_600_000_000).astype("timedelta64[us]")
        for metric, v in (("response_time_ms", lat), ("error_ratio", err)):
            parts.append(
                pl.DataFrame({"component": f"svc-{c}", "metric": metric, "bucket_start": ts, "value": v})
            )
    return pl.concat(parts).with_columns(pl.col("bucket_start").dt.replace_time_zone("UTC"))


def _child_pid(item: int) -> tuple[int, int]:
    return item, os.getpid()


def test_process_map_runs_in_other_processes_and_keeps_the_order() -> None:
    out = process_map(_child_pid, list(range(7)), 2)
    assert [k for k, _ in out] == list(range(7))
    assert os.getpid() not in {pid for _, pid in out}
    assert process_map(_child_pid, [1, 2], 1) == [(1, os.getpid()), (2, os.getpid())]


_ORPHAN_SCRIPT = """
import os, sys, time
from pathlib import Path
from autopilot_pipeline.aiops.parallel import process_map

def hold(item):
    Path(sys.argv[1], str(os.getpid())).write_text(str(item))
    time.sleep(600)

if __name__ == "__main__":
    process_map(hold, [1, 2], 2)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    return state != "Z"


def test_pool_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of the process that owns a pool (a lost Celery worker, an OOM kill) takes its workers along."""
    script = tmp_path / "owner.py"
    script.write_text(_ORPHAN_SCRIPT)
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # The owner ignores SIGTERM, as a process does after a command's cleanup ignored it: its workers inherit that.
    owner = subprocess.Popen(
        [sys.executable, str(script), str(pids_dir)],
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(pids_dir.iterdir())) < 2:
            assert owner.poll() is None and time.monotonic() < deadline, "the pool never started"
            time.sleep(0.1)
        workers = [int(p.name) for p in pids_dir.iterdir()]
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), workers
    finally:
        owner.kill()
        for p in pids_dir.iterdir():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(p.name), signal.SIGKILL)


def test_split_series_deals_whole_series_round_robin() -> None:
    frame = _fleet(components=3, hours=30)
    parts = split_series(frame, ["component", "metric"], 4)
    assert len(parts) == 4
    keys = [set(p.select("component", "metric").unique().iter_rows()) for p in parts]
    assert sum(len(k) for k in keys) == 6 and set.union(*keys) == set(
        frame.select("component", "metric").unique().iter_rows()
    )
    assert all(p.height == 2 * 30 or p.height == 30 for p in parts)
    assert split_series(frame, ["component", "metric"], 1)[0] is frame


def test_small_inputs_stay_in_process() -> None:
    assert not worth_a_pool(1, 10, 10**7, 300_000)
    assert not worth_a_pool(2, 1, 10**7, 300_000)
    assert not worth_a_pool(2, 10, 299_999, 300_000)
    assert worth_a_pool(2, 2, 300_000, 300_000)


def test_anomaly_batches_score_the_same_in_worker_processes() -> None:
    frame = _fleet()
    serial = detect_batched(frame, workers=1, batch_series=2, only_anomalies=False)
    pooled = detect_batched(frame, workers=2, batch_series=2, min_pool_rows=0, only_anomalies=False)
    assert serial.height == frame.height and serial["isAnomaly"].sum() > 0
    assert_frame_equal(pooled, serial)
    # the batches do not depend on the row order either (series interleaved, not in runs)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=11)
    assert_frame_equal(detect_batched(shuffled, batch_series=2, only_anomalies=False), serial)


def test_one_batch_per_metric_is_the_detectors_own_result() -> None:
    frame = _fleet(components=3)
    own = detect_anomalies(frame, only_anomalies=False).sort("component", "metric", "timestamp")
    assert_frame_equal(detect_batched(frame, only_anomalies=False), own)
    # cut by metric only (3 series per batch), in 2 processes: still the detector's own batches
    assert_frame_equal(detect_batched(frame, workers=2, min_pool_rows=0, only_anomalies=False), own)


def test_score_window_is_the_same_with_workers() -> None:
    frame = _fleet()
    since = frame["bucket_start"].min() + timedelta(hours=200)  # type: ignore[operator]
    serial = score_window(frame, since, workers=1)
    pooled = score_window(frame, since, workers=2, min_pool_rows=0)
    assert serial.height == 5 * 2 * 200 and serial["is_anomaly"].sum() > 0
    assert_frame_equal(pooled, serial)


def test_predictions_are_the_same_with_workers() -> None:
    frame = _fleet(components=3, hours=96)
    rules = {"response_time_ms": ("above", 200.0)}
    serial = predict_failures(frame, thresholds=rules, include_forecast=False)
    pooled = predict_failures(frame, thresholds=rules, include_forecast=False, workers=2, min_pool_series=0)
    assert len(serial) == 6  # both metrics: error_ratio has a default threshold
    assert pooled == serial


def test_workers_setting_parses_and_reaches_the_dagster_config() -> None:
    assert AiopsSettings().workers == default_workers() == max(1, min(2, os.cpu_count() or 1))
    assert AiopsSettings(workers="3").workers == 3  # type: ignore[arg-type]
    for bad in (0, -1, "two"):
        with pytest.raises(ValidationError):
            AiopsSettings(workers=bad)  # type: ignore[arg-type]
    assert AiopsConfig().workers == default_workers()

    @dg.asset
    def workers_seen(aiops: AiopsResource) -> int:
        return aiops.settings.workers

    run_config = {"resources": {"aiops": {"config": {"settings": {"workers": 1}}}}}
    result = dg.materialize([workers_seen], resources={"aiops": AiopsResource()}, run_config=run_config)
    assert result.output_for_node("workers_seen") == 1
