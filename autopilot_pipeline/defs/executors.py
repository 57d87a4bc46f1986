"""Which executor runs a run's steps, chosen by the environment when the code location loads.

``AUTOPILOT_EXECUTOR`` is ``in_process`` (the default: our steps are short and I/O bound, a process per
step costs ~2.5 s), ``multiprocess`` (a process per step, on this machine), ``k8s`` (a Kubernetes Job per
step, dagster-k8s's ``k8s_job_executor``, configured by the YAML in ``AUTOPILOT_K8S_EXECUTOR_CONFIG``: see
deploy/helm/values.yaml), or ``celery``: every step is a task on a Redis queue (``AUTOPILOT_REDIS_URL``, broker and result backend) that any ``autopilot worker``
sharing the Dagster instance (``DAGSTER_HOME`` with Postgres storage) and the state directory (the
Parquet frames handed between assets) may take.

Celery is set for at-least-once delivery, which our steps allow because every partition write replaces
its window in one transaction (a step run twice leaves the rows of one run):

- ``task_acks_late``: a task is acknowledged when it has finished, not when a worker took it, so the
  task of a worker that dies is still in Redis and is delivered again;
- ``task_reject_on_worker_lost``: a pool process killed mid-task requeues the task instead of failing it;
- ``worker_prefetch_multiplier = 1``: a worker holds one task per pool process, so a busy worker does not
  sit on tasks an idle one could run, and a dead one takes few down with it;
- Redis hands an unacknowledged task to another worker ``visibility_timeout`` seconds after it was
  taken (``AUTOPILOT_CELERY_VISIBILITY_TIMEOUT``, default 900: longer than any hourly step, or a slow
  step would run twice). Workers look for such tasks every ``unacked_restore_interval`` seconds.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

EXECUTOR_ENV = "AUTOPILOT_EXECUTOR"
REDIS_URL_ENV = "AUTOPILOT_REDIS_URL"
VISIBILITY_TIMEOUT_ENV = "AUTOPILOT_CELERY_VISIBILITY_TIMEOUT"
K8S_CONFIG_ENV = "AUTOPILOT_K8S_EXECUTOR_CONFIG"
POLL_INTERVAL_ENV = "AUTOPILOT_CELERY_POLL_INTERVAL"
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")
DEFAULT_VISIBILITY_TIMEOUT_S = 900
DEFAULT_POLL_INTERVAL_S = 0.2
#: The queue dagster_celery routes step tasks to (its app's only queue).
QUEUE = "dagster"


def executor_name() -> str:
    """The configured executor's name; an unknown one is refused in one line."""
    name = os.environ.get(EXECUTOR_ENV, "").strip() or "in_process"
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r} is not one of {', '.join(EXECUTORS)}")
    return name


def redis_url() -> str:
    url = os.environ.get(REDIS_URL_ENV, "").strip()
    if not url:
        raise ValueError(
            f"{EXECUTOR_ENV}=celery needs {REDIS_URL_ENV} (e.g. redis://127.0.0.1:6379/0): the Celery broker "
            "and result backend shared by the runs and every `autopilot worker`"
        )
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"{REDIS_URL_ENV} must be a redis://, rediss:// or unix:// URL")
    return url


def visibility_timeout_s() -> int:
    raw = os.environ.get(VISIBILITY_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_VISIBILITY_TIMEOUT_S
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{VISIBILITY_TIMEOUT_ENV} must be a whole number of seconds >= 1, not {raw!r}")
    return value


def poll_interval_s() -> float:
    """Longest wait of a run process between two looks at its steps' results (dagster-celery's loop sleeps
    1 s): it also looks as soon as a result is published (``celery_steps._ResultWaker``), so this bounds how
    late a cancelled run revokes its steps, and how late a result is seen if the publication is missed."""
    raw = os.environ.get(POLL_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_POLL_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0.01 <= value <= 60:
        raise ValueError(f"{POLL_INTERVAL_ENV} must be a number of seconds from 0.01 to 60, not {raw!r}")
    return value


def celery_app_settings() -> dict[str, Any]:
    """Celery settings shared by the runs (which send tasks) and the workers (which take them)."""
    visibility = visibility_timeout_s()
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE,
        "task_default_priority": 5,
        # Results are read once by the run that waits for them; a day is ample and keeps Redis small.
        "result_expires": 86400,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(10, visibility // 4)),
            "unacked_restore_throttle": 1,
            # dagster_celery's own defaults for sending (retried on a dropped connection)
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility},
    }


def celery_executor_config() -> dict[str, Any]:
    """The ``celery_executor`` config: the Redis URL is read from the environment by name, so it is not
    written into run configs or job snapshots."""
    redis_url()  # fail at load time, in one line, when it is missing
    poll_interval_s()
    return {
        "broker": {"env": REDIS_URL_ENV},
        "backend": {"env": REDIS_URL_ENV},
        "config_source": celery_app_settings(),
    }


def k8s_executor_config() -> dict[str, Any]:
    """The ``k8s_job_executor`` config from ``AUTOPILOT_K8S_EXECUTOR_CONFIG`` (a YAML mapping; empty: the
    executor's defaults, every step pod inheriting the run pod's image, secrets and volumes)."""
    import yaml

    raw = os.environ.get(K8S_CONFIG_ENV, "").strip()
    try:
        config = yaml.safe_load(raw) if raw else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{K8S_CONFIG_ENV} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{K8S_CONFIG_ENV} must be a YAML mapping of k8s_job_executor settings")
    return config


def from_environment() -> dg.ExecutorDefinition:
    """The executor for every job of the code location."""
    name = executor_name()
    if name == "celery":
        from autopilot_pipeline.defs.celery_steps import step_celery_executor

        return step_celery_executor(poll_interval_s).configured(celery_executor_config(), name="celery")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(k8s_executor_config(), name="k8s")
    if name == "multiprocess":
        return dg.multiprocess_executor
    return dg.in_process_executor
