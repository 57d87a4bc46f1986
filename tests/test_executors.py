"""The executor chosen by the environment (defs/executors.py) and the worker command's arguments: the
settings that make a dead worker's task come back (late ack, prefetch 1, visibility timeout), and one-line
errors for what a user can get wrong. The real processes are in tests/test_celery.py."""

from __future__ import annotations

import pytest

from autopilot_pipeline import cli
from autopilot_pipeline.commands import worker
from autopilot_pipeline.defs import executors


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        executors.EXECUTOR_ENV,
        executors.REDIS_URL_ENV,
        executors.VISIBILITY_TIMEOUT_ENV,
        executors.K8S_CONFIG_ENV,
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_default_stays_in_process_and_multiprocess_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    assert executors.from_environment().name == "in_process"
    monkeypatch.setenv(executors.EXECUTOR_ENV, "multiprocess")
    assert executors.from_environment().name == "multiprocess"


def test_celery_acknowledges_late_and_names_the_redis_url_by_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("dagster_celery")
    monkeypatch.setenv(executors.EXECUTOR_ENV, "celery")
    monkeypatch.setenv(executors.REDIS_URL_ENV, "redis://127.0.0.1:6390/0")
    monkeypatch.setenv(executors.VISIBILITY_TIMEOUT_ENV, "40")
    assert executors.from_environment().name == "celery"
    config = executors.celery_executor_config()
    assert config["broker"] == config["backend"] == {"env": executors.REDIS_URL_ENV}  # no URL in snapshots
    source = config["config_source"]
    assert source["task_acks_late"] and source["task_reject_on_worker_lost"]
    assert source["worker_prefetch_multiplier"] == 1
    transport = source["broker_transport_options"]
    assert transport["visibility_timeout"] == 40
    assert 1 <= transport["unacked_restore_interval"] <= 10 and transport["unacked_restore_throttle"] == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({executors.EXECUTOR_ENV: "threads"}, "is not one of"),
        ({executors.EXECUTOR_ENV: "celery"}, "needs AUTOPILOT_REDIS_URL"),
        ({executors.EXECUTOR_ENV: "celery", executors.REDIS_URL_ENV: "amqp://x"}, "must be a redis://"),
        (
            {
                executors.EXECUTOR_ENV: "celery",
                executors.REDIS_URL_ENV: "redis://127.0.0.1:1/0",
                executors.VISIBILITY_TIMEOUT_ENV: "0",
            },
            "whole number of seconds",
        ),
        ({executors.EXECUTOR_ENV: "k8s", executors.K8S_CONFIG_ENV: "- a list"}, "YAML mapping"),
    ],
)
def test_bad_settings_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        executors.from_environment()


def test_worker_takes_one_task_per_process_from_the_dagster_queue() -> None:
    argv = worker.celery_argv(3, "w1", "INFO")
    assert argv[0] == "worker"
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs["--queues"] == executors.QUEUE == "dagster"
    assert pairs["--concurrency"] == "3" and pairs["--prefetch-multiplier"] == "1"
    assert pairs["--hostname"] == "w1@%h"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["worker"], {}, "needs AUTOPILOT_REDIS_URL"),
        (["worker", "--concurrency", "0"], {executors.REDIS_URL_ENV: "redis://127.0.0.1:1/0"}, "at least 1"),
        (["dev", "--workers", "-1"], {}, "0 or more"),
        (["dev"], {executors.EXECUTOR_ENV: "celery"}, "needs AUTOPILOT_REDIS_URL"),
    ],
)
def test_user_errors_of_worker_and_dev_are_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autopilot: error: ") and message in err and "\n" not in err


def test_step_processes_on_one_machine_share_its_cores_for_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.os, "cpu_count", lambda: 8)
    assert [worker.share_of_cores(n) for n in (1, 2, 3, 8, 16)] == ["8", "4", "2", "1", "1"]
    monkeypatch.setattr(worker.os, "cpu_count", lambda: None)
    assert worker.share_of_cores(1) == "1"
