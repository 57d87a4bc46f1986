"""What makes a Celery step cheap (defs/celery_steps.py, definitions.reuse_in_this_process): one Dagster
instance per process whose connections are reused, steps sent without registering the task again (no
Celery duplicate-task warning), the code location built once per environment, and the poll interval's
bounds. The steps on real workers are in tests/test_celery.py."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import psycopg2
import pytest
from dagster._core.execution.retries import RetryMode
from dagster._core.instance.ref import InstanceRef

from autopilot_pipeline import backfill, definitions
from autopilot_pipeline.defs import celery_steps, executors
from autopilot_pipeline.postgres import urls

pytest.importorskip("dagster_celery")  # pinned in pyproject.toml


@pytest.fixture
def dagster_home(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Postgres-backed instance in the test database (Dagster's tables beside ours)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", urls.dagster_url(pg_url, urls.parse(pg_url).database))
    return home


def _count_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every new connection psycopg2 opens from now on (the real connect still runs)."""
    opened: list[int] = []
    connect = psycopg2.connect

    def counting(*args: object, **kwargs: object) -> object:
        opened.append(1)
        return connect(*args, **kwargs)

    monkeypatch.setattr(psycopg2, "connect", counting)
    return opened


def test_a_process_keeps_one_instance_and_reuses_its_connections(
    dagster_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.DagsterInstance.get():  # Dagster's tables, created once
        pass
    opened = _count_connects(monkeypatch)
    with dg.DagsterInstance.get() as plain:  # what dagster-celery's task built for every step
        opened.clear()
        for _ in range(10):
            plain.get_runs_count()
            plain.has_dynamic_partition("targets", "default")
        assert len(opened) >= 20  # a new connection per statement: the measure sees them

    instance = celery_steps.process_instance()
    assert celery_steps.process_instance() is instance
    assert celery_steps.process_instance(instance.get_ref()) is celery_steps.process_instance(
        instance.get_ref()
    )
    opened.clear()
    for _ in range(10):
        instance.get_runs_count()
        instance.has_dynamic_partition("targets", "default")
    assert len(opened) <= 2, f"{len(opened)} connections opened for 20 statements"


def test_held_connections_survive_a_restart_of_dagsters_postgres(dagster_home: Path, pg_url: str) -> None:
    """A long-lived worker's held connections die with the server: the next statements reconnect instead
    of failing (every backend of the test database is terminated, as a restart would)."""
    instance = celery_steps.hold_connections(dg.DagsterInstance.get())
    try:
        assert instance.get_run_records(limit=1) == []
        instance.get_latest_materialization_events([dg.AssetKey("nothing")])
        with psycopg2.connect(pg_url) as admin:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                (terminated,) = cur.fetchone()
        assert terminated >= 2  # the held connections of the run and the event log storage
        assert instance.get_run_records(limit=1) == []
        instance.get_latest_materialization_events([dg.AssetKey("nothing")])
    finally:
        instance.dispose()


def test_a_forked_child_takes_the_instance_its_parent_prepared(
    dagster_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Celery worker does: the main process builds the instance before forking its pool; a pool
    process's first step takes it instead of building its own, with connections of its own, held."""
    monkeypatch.setattr(celery_steps, "_prepared", {})
    monkeypatch.setattr(celery_steps, "_instances", {})
    with dg.DagsterInstance.get():  # Dagster's tables, created once
        pass
    prepared = celery_steps.prepare_for_fork()
    ref = prepared.get_ref()
    pid = os.fork()
    if pid == 0:  # the child reports through its exit code: 0 ok, 1 another instance, 2 no held connection
        code = 3
        try:
            opened = _count_connects(monkeypatch)
            instance = celery_steps.process_instance(ref)
            code = 1 if instance is not prepared or celery_steps.process_instance(ref) is not instance else 0
            for _ in range(10):
                instance.get_runs_count()
                instance.has_dynamic_partition("targets", "default")
            if code == 0 and not 1 <= len(opened) <= 2:
                code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_steps_are_sent_by_name_without_registering_the_task_again(tmp_path: Path) -> None:
    from celery import Celery

    app = Celery("test-send", broker="memory://", backend="cache+memory://")
    context = SimpleNamespace(
        reconstructable_job=backfill.reconstructable_job("health_hourly_job"),
        dagster_run=SimpleNamespace(run_id="run-1"),
        instance=SimpleNamespace(get_ref=lambda: InstanceRef.from_dir(str(tmp_path))),
        executor=SimpleNamespace(retries=RetryMode.DISABLED),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Celery's duplicate-task warning would fail the test
        for key in ("ingest_a", "ingest_b", "ingest_c"):
            celery_steps._send_step(app, context, SimpleNamespace(key=key), executors.QUEUE, 5, None)
    assert celery_steps.TASK_NAME not in app.tasks
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(executors.QUEUE)
        sent = [queue.get(timeout=1) for _ in range(3)]
        queue.close()
    assert [m.headers["task"] for m in sent] == [celery_steps.TASK_NAME] * 3
    kwargs = [m.decode()[1] for m in sent]
    assert all(set(k) == {"execute_step_args_packed", "executable_dict"} for k in kwargs)


def test_the_code_location_is_built_once_per_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(executors.EXECUTOR_ENV, raising=False)
    assert definitions.defs() is not definitions.defs()  # by default every load builds anew
    monkeypatch.setitem(definitions._reuse, "on", True)
    monkeypatch.setattr(definitions, "_built", {})
    first = definitions.defs()
    assert definitions.defs() is first
    monkeypatch.setenv("CELERY_LOG_LEVEL", "20")  # what a Celery worker sets after loading it
    monkeypatch.setenv("_MP_FORK_LOGLEVEL_", "20")
    assert definitions.defs() is first
    monkeypatch.setenv(executors.EXECUTOR_ENV, "multiprocess")
    other = definitions.defs()
    assert other is not first
    assert other.get_repository_def().get_job("health_hourly_job").executor_def.name == "multiprocess"


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "61"])
def test_a_bad_poll_interval_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(executors.POLL_INTERVAL_ENV, raw)
    with pytest.raises(ValueError, match="seconds from 0.01 to 60"):
        executors.poll_interval_s()


def test_the_poll_interval_defaults_below_dagster_celerys_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(executors.POLL_INTERVAL_ENV, raising=False)
    assert executors.poll_interval_s() == executors.DEFAULT_POLL_INTERVAL_S < 1
    monkeypatch.setenv(executors.POLL_INTERVAL_ENV, "0.5")
    assert executors.poll_interval_s() == 0.5


def test_a_backfill_run_reports_without_reinitializing_its_resources(
    dagster_home: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``backfill.execute`` reads success and run id off Dagster's result without entering it: entering
    rebuilds the run's context and sets up every resource again (database connections included) after the
    run, for nothing (~10 % of a Celery run process's CPU)."""
    from dagster._core.execution.job_execution_result import JobExecutionResult

    from autopilot_pipeline import runner

    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(executors.EXECUTOR_ENV, raising=False)
    monkeypatch.setattr(celery_steps, "_instances", {})

    def entered(self: JobExecutionResult) -> JobExecutionResult:
        raise AssertionError("the result was entered")

    monkeypatch.setattr(JobExecutionResult, "__enter__", entered)
    with dg.DagsterInstance.get() as instance:
        runner.ensure_targets(instance)
    hour = "2026-03-02-10:00"
    summary = backfill.execute(backfill.RunRequest("health_hourly_job", hour, hour))
    assert summary.success, summary
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(summary.run_id).is_success
