"""Distributed execution for real (issue 12.2): Redis, two ``autopilot worker`` processes, backfills whose
steps run on them over two monitored targets (``default`` and ``shop_b``) × two hours, and a worker
killed with SIGKILL in the middle of one.

Every process is real: Debian's ``redis-server`` on a free loopback port (no persistence), the workers are
``python -m autopilot_pipeline.cli worker`` in their own sessions, the runs are reconstructable jobs
executed by ``backfill.run_backfill`` against a Postgres-backed Dagster instance. The reference is the
same hours of the same demo data materialized in one process (the in-process executor) in a second
pair of databases: the row counts of every hourly table, per target, must be equal (nothing lost, nothing
doubled).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from autopilot_pipeline import backfill, runner
from autopilot_pipeline.commands._workers import LocalWorkers
from autopilot_pipeline.defs import celery_steps
from autopilot_pipeline.defs.partitions import RANGE_END, RANGE_START
from autopilot_pipeline.demo.store import load_demo_data
from autopilot_pipeline.integrations.redis_local import LocalRedis, redis_missing
from autopilot_pipeline.postgres import server, targets

from .conftest import TEMPLATE, _create_database, _drop_database

pytest.importorskip("dagster_celery")  # pinned in pyproject.toml

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(redis_missing(), reason="Debian redis-server is not installed (.ci/run installs it)"),
]

END = datetime(2026, 3, 3, tzinfo=UTC)
HOURS = 2  # hourly partitions per target, one run each
TARGETS = ("default", "shop_b")  # two monitored databases: 4 runs, 28 steps (the kill lands mid-backfill)
SHOP_B_ENV = "AUTOPILOT_TEST_SHOP_B_URL"
TABLES = (
    "analytics.uptime_hourly",
    "analytics.error_rates_hourly",
    "analytics.response_times_hourly",
    "analytics.health_score_hourly",
    "analytics.metric_samples_hourly",
    "analytics.quarantine",
)
VISIBILITY_TIMEOUT_S = 15  # a task taken by a dead worker is handed out again after this


def _hours() -> list[str]:
    return [runner.hour_key(END - timedelta(hours=HOURS - i)) for i in range(HOURS)]


def _counts(url: str) -> dict[tuple[str, str], int]:
    """Rows per (table, target)."""
    with psycopg.connect(url) as conn:
        return {
            (t, target): n
            for t in TABLES
            for target, n in conn.execute(f"SELECT target, count(*) FROM {t} GROUP BY target").fetchall()
        }


def _demo_database(pg_server: str, prefix: str, seed: int = 11) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = _create_database(pg_server, name, template=TEMPLATE)
    load_demo_data(url, days=1, components=3, seed=seed, replace=False, end=END, app_scale=0.01)
    return name, url


def _with_shop_b(
    pg_server: str, url: str, prefix: str, names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second monitored database, registered as target ``shop_b`` of the pipeline database ``url``."""
    name, shop_b = _demo_database(pg_server, prefix, seed=12)
    names.append(name)
    monkeypatch.setenv(SHOP_B_ENV, shop_b)
    with psycopg.connect(url, autocommit=True) as conn:
        targets.add_target(conn, "shop_b", url_env=SHOP_B_ENV)


@dataclass
class Cluster:
    url: str
    redis: LocalRedis
    workers: LocalWorkers
    expected: dict[str, int]


@pytest.fixture(scope="module")
def cluster(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Reference counts from one process, then Redis and two workers over a second copy of the data
    (shared by the module's backfill tests: each starts from what the previous one left, which the
    reference counts describe either way)."""
    names = []
    tmp_path = tmp_path_factory.mktemp("celery")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _cluster(pg_server, tmp_path, monkeypatch, names)


def _cluster(
    pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> Iterator[Cluster]:
    try:
        name, reference_url = _demo_database(pg_server, "celery_ref")
        names.append(name)
        monkeypatch.setenv("AUTOPILOT_DATABASE_URL", reference_url)
        monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "reference"))
        monkeypatch.delenv("AUTOPILOT_EXECUTOR", raising=False)
        _with_shop_b(pg_server, reference_url, "celery_ref_b", names, monkeypatch)
        hours = _hours()
        with dg.DagsterInstance.ephemeral() as instance:
            for target in TARGETS:
                assert runner.run_job_range(
                    instance, "health_hourly_job", hours[0], hours[-1], target=target
                ).success
        expected = _counts(reference_url)
        assert all(
            expected.get((t, target), 0) > 0
            for t in TABLES
            if t != "analytics.quarantine"
            for target in TARGETS
        ), expected

        name, url = _demo_database(pg_server, "celery_run")
        names.append(name)
        _with_shop_b(pg_server, url, "celery_run_b", names, monkeypatch)
        redis = LocalRedis(tmp_path / "redis").start()
        env = {
            "AUTOPILOT_DATABASE_URL": url,
            "AUTOPILOT_STATE_DIR": str(tmp_path / "state"),
            "AUTOPILOT_EXECUTOR": "celery",
            "AUTOPILOT_REDIS_URL": redis.url,
            "AUTOPILOT_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
            "OPENBLAS_NUM_THREADS": "1",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        runner.configure_environment(server.resolve())  # the instance the workers use too (DAGSTER_HOME)
        with dg.DagsterInstance.get():  # create Dagster's tables once, before three processes race to
            pass
        # INFO: the test of what the pool processes build reads the workers' logs
        workers = LocalWorkers(2, dict(os.environ), tmp_path / "workers", loglevel="INFO")
        try:
            workers.start(redis.url)
            yield Cluster(url, redis, workers, expected)
        finally:
            workers.stop()
            redis.stop()
    finally:
        for name in names:
            _drop_database(pg_server, name)
        shutil.rmtree(tmp_path / "state", ignore_errors=True)


def _requests(tag: str) -> list[backfill.RunRequest]:
    return [
        backfill.RunRequest("health_hourly_job", h, h, target=t, tags={"autopilot/test": tag})
        for t in TARGETS
        for h in _hours()
    ]


def _step_events(instance: dg.DagsterInstance, tag: str) -> list[tuple[str, str, str, float, str | None]]:
    """(run id, event type, step key, timestamp, celery worker) of every step event of the tagged runs."""
    rows = []
    for run in instance.get_runs(filters=dg.RunsFilter(tags={"autopilot/test": tag})):
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            worker = None
            if event.event_type == dg.DagsterEventType.ENGINE_EVENT:
                metadata = event.engine_event_data.metadata or {}
                value = metadata.get("Celery worker")
                worker = getattr(value, "value", None) or getattr(value, "text", None)
            rows.append((run.run_id, event.event_type_value, event.step_key, record.timestamp, worker))
    return rows


def _workers_used(events: list) -> set[str]:
    return {worker.split("@")[0] for *_, worker in events if worker}


def test_a_backfill_runs_on_two_workers_and_matches_one_process(cluster: Cluster) -> None:
    summaries = backfill.run_backfill(_requests("spread"), parallel_runs=2)
    assert [s.success for s in summaries] == [True] * (HOURS * len(TARGETS))
    assert _counts(cluster.url) == cluster.expected
    with dg.DagsterInstance.get() as instance:
        used = _workers_used(_step_events(instance, "spread"))
    assert used == {"w1", "w2"}, f"steps ran on {used}"


def test_the_pool_processes_inherit_the_code_location_and_the_instance(cluster: Cluster) -> None:
    """After the backfill above, each worker built the Dagster instance once, in its main process before
    the pool started, and its pool process built neither it nor the code location on its steps."""
    for name, process in zip(cluster.workers.names, cluster.workers.processes, strict=True):
        log = (cluster.workers.log_dir / f"{name}.log").read_text()
        assert re.search(r"execute_plan\[[^]]+\] succeeded", log), f"{name} ran no step"
        built = re.findall(r"/([\w-]+)\] (code location built|Dagster instance built)\b.*\(pid (\d+)\)", log)
        assert ("MainProcess", "Dagster instance built", str(process.pid)) in built, built
        in_pool = [b for b in built if b[0] != "MainProcess" or b[2] != str(process.pid)]
        assert not in_pool, f"{name}'s pool process built on a step: {in_pool}"


def test_the_workers_share_the_cores_for_polars(cluster: Cluster) -> None:
    """Two workers of one pool process each on this machine: each pool process sizes polars' thread pool to
    its share of the cores (``commands.worker.share_of_cores``), not to every core, as polars would."""
    share = max(1, (os.cpu_count() or 1) // 2)
    for name in cluster.workers.names:
        log = (cluster.workers.log_dir / f"{name}.log").read_text()
        sizes = {int(n) for n in re.findall(r"pool process \d+: polars uses (\d+) threads", log)}
        assert sizes == {share}, f"{name}: {sizes}"


def _reaped_children_cpu_ticks(pid: int) -> int:
    """CPU ticks of the processes ``pid`` started and reaped (cutime + cstime in /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[13]) + int(fields[14])


def test_celery_steps_capture_their_logs_without_starting_processes(cluster: Cluster) -> None:
    """After the backfill above: every step's logs were captured and closed (what the UI shows for a step),
    and no pool process started a process on its steps. Dagster's capture mirrors a step's output with a
    ``tail`` and a Python watcher per stream (~22 ms CPU a step), which a pool process whose stdout/stderr
    are Celery's logging proxies could not even feed (the logs were empty); its own capture swaps
    ``sys.stdout``/``sys.stderr`` for the files (tests/test_compute_logs.py)."""
    with dg.DagsterInstance.get() as instance:
        manager = instance.compute_log_manager
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"autopilot/test": "spread"}))
        assert runs
        for run in runs:
            captured = [
                r.dagster_event
                for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
            ]
            assert captured, run.run_id
            for event in captured:
                key = manager.build_log_key_for_run(run.run_id, event.logs_captured_data.file_key)
                assert manager.is_capture_complete(key), key
    for name, process in zip(cluster.workers.names, cluster.workers.processes, strict=True):
        pool = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert pool, f"{name} has no pool process"
        ticks = {pid: _reaped_children_cpu_ticks(int(pid)) for pid in pool}
        assert not any(ticks.values()), f"{name}'s pool processes started processes: {ticks}"


def test_a_run_looks_at_its_steps_when_their_results_are_published(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 60 s poll interval, one target's hour (7 steps, 3 levels: the loop waits after sending each)
    finishes well within one interval: the run's loop woke up when each step's result was published
    (``celery_steps._ResultWaker``); a loop that slept its interval would take three."""
    monkeypatch.setenv("AUTOPILOT_CELERY_POLL_INTERVAL", "60")
    started = time.monotonic()
    (summary,) = backfill.run_backfill(_requests("wake")[:1], parallel_runs=1)
    assert summary.success
    assert time.monotonic() - started < 60


def test_a_step_returns_to_its_run_only_the_events_the_run_acts_on(cluster: Cluster) -> None:
    """The worker writes every event of a step to the event log and returns to the run that sent it the
    events its loop acts on (``celery_steps.RETURNED_EVENTS``): the run's result has each step's output and
    success, the event log has the materializations of every (target, hour) partition as well."""
    job = backfill.reconstructable_job("health_hourly_job")
    (hour,) = _hours()[-1:]
    try:
        key = runner.target_partition_key(job.get_definition(), hour, "default")
        with dg.DagsterInstance.get() as instance:
            runner.ensure_targets(instance)
            result = dg.execute_job(
                job,
                instance=instance,
                tags={RANGE_START: key, RANGE_END: key, "autopilot/test": "returned"},
                run_config=runner.QUIET_LOGGERS,
            )
            assert result.success
            returned = {e.event_type for e in result.all_events if e.step_key is not None}
            successes = {e.step_key for e in result.all_events if e.is_step_success}
            stored = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    finally:  # Dagster caches the job's definition (this module's executor) for the process's later tests
        type(job).get_definition.cache_clear()
        type(job).get_repository_definition.cache_clear()
    steps = len(result.job_def.nodes)
    assert len(successes) == steps
    assert returned <= {*celery_steps.RETURNED_EVENTS, dg.DagsterEventType.ENGINE_EVENT}, returned
    assert dg.DagsterEventType.STEP_OUTPUT in returned
    assert dg.DagsterEventType.ASSET_MATERIALIZATION not in returned
    assert {r.dagster_event.asset_key for r in stored} == set(result.job_def.asset_layer.selected_asset_keys)
    assert {r.dagster_event.partition for r in stored} == {key}


def test_a_worker_killed_mid_backfill_loses_and_doubles_nothing(cluster: Cluster) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:  # so every row below is this backfill's
        conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["summaries"] = backfill.run_backfill(_requests("kill"), parallel_runs=2)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    victim: tuple[str, str] | None = None
    killed_at = 0.0
    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + 180
        while victim is None and thread.is_alive() and time.monotonic() < deadline:
            events = _step_events(instance, "kill")
            done = {
                (run_id, step)
                for run_id, kind, step, *_ in events
                if kind in ("STEP_SUCCESS", "STEP_FAILURE")
            }
            taken = [
                (run_id, step) for run_id, _, step, _, worker in events if worker and worker.startswith("w1@")
            ]
            in_flight = [key for key in taken if key not in done]
            if in_flight:
                cluster.workers.kill(0)
                killed_at = time.time()
                victim = in_flight[-1]
            else:
                time.sleep(0.05)
        thread.join(timeout=300)
        assert not thread.is_alive(), "the backfill did not finish within 5 minutes of the kill"
        assert "error" not in outcome, outcome.get("error")
        assert victim is not None, "worker w1 never took a step"
        summaries = outcome["summaries"]
        assert [s.success for s in summaries] == [True] * (HOURS * len(TARGETS))  # type: ignore[attr-defined]
        assert _counts(cluster.url) == cluster.expected

        events = _step_events(instance, "kill")
    run_id, step = victim
    finished_before_kill = any(
        r == run_id and s == step and kind == "STEP_SUCCESS" and ts <= killed_at
        for r, kind, s, ts, _ in events
    )
    print(f"killed w1 running {step} of run {run_id[:8]}; finished before the kill: {finished_before_kill}")
    if not finished_before_kill:  # the step died with w1: its task must have been handed to w2
        again = [
            worker
            for r, _, s, ts, worker in events
            if r == run_id and s == step and worker and ts > killed_at
        ]
        assert again and all(w.startswith("w2@") for w in again), f"{step} was not redelivered: {again}"


def test_dev_with_workers_stops_redis_and_the_workers_on_sigterm(tmp_path: Path) -> None:
    """``autopilot dev --workers 2``: Redis and both workers start beside the UI and stop with it (the
    10 s guarantee of tests/faults/test_signals.py, now with the workers and Redis among the children)."""
    from .faults.conftest import free_port
    from .faults.processes import alive, postmaster_pid
    from .faults.test_signals import output, start, stop_and_check, ui_ready, wait_until, watch_dev

    # short and outside pytest's tree: the embedded server runs as another user and needs a socket path
    root = Path(tempfile.mkdtemp(prefix="ap-celery-"))
    proc = None
    try:
        port = free_port()
        proc = start(["dev", "--port", str(port), "--no-api", "--workers", "2"], root)
        wait_until(ui_ready(port), proc, "the Dagster UI")
        assert "2 Celery worker(s) on Redis redis://127.0.0.1:" in output(root)
        redis_port = int(output(root).split("redis://127.0.0.1:")[1].split("/")[0])
        watched = watch_dev(proc, root)
        names = {
            _cmdline(pid).split("--name ")[1].split()[0] for pid in watched if "cli worker" in _cmdline(pid)
        }
        assert names == {"worker1", "worker2"}, names
        assert any("redis-server" in _cmdline(pid) for pid in watched)
        stop_and_check(proc, "SIGTERM", watched, [port, redis_port])
    finally:
        if proc is not None and proc.poll() is None:  # a failed check must not leave the stack running
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        pid = postmaster_pid(root / "postgres" / "pgdata")
        if pid and alive(pid):  # a failed test must not leave a server behind
            from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

            EmbeddedPostgres(root / "postgres").stop()
        shutil.rmtree(root, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
