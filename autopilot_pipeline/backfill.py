"""Backfills as many runs at once: what the Dagster daemon does for a multi-run backfill, from Python, so
the tests and the benchmark drive the same runs without a daemon.

Each run is a reconstructable job executed by one of ``parallel_runs`` long-lived processes against the
persistent Dagster instance (``DAGSTER_HOME``). With ``AUTOPILOT_EXECUTOR=celery`` those processes only
orchestrate: every step is a task that the ``autopilot worker`` processes take from Redis, so the work
spreads over as many workers as there are, and the runs must be reconstructable by them (in-process runs
of ``runner`` are not). A request names its target and its time range; per-target jobs run on the
target's own partitions (``target|hour``).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from autopilot_pipeline import settings
from autopilot_pipeline.defs.celery_steps import process_instance
from autopilot_pipeline.defs.partitions import DEFAULT_TARGET, RANGE_END, RANGE_START
from autopilot_pipeline.runner import QUIET_LOGGERS, RunSummary, ensure_targets, target_partition_key

__all__ = ["RunRequest", "reconstructable_job", "run_backfill"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """One run of a backfill: a job over ``target``'s time partitions ``first_key..last_key``.

    ``run_config`` is merged over the quiet loggers.
    """

    job_name: str
    first_key: str
    last_key: str
    target: str = DEFAULT_TARGET
    run_config: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


def _repository() -> Any:
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module(
        "autopilot_pipeline.definitions", "defs", working_directory=str(settings.PROJECT_ROOT)
    )


def reconstructable_job(job_name: str) -> Any:
    """The job as a pointer into this code location, so another process (a Celery worker) can load it."""
    return _repository().get_reconstructable_job(job_name)


def execute(request: RunRequest) -> RunSummary:
    """Execute one request in this process and wait for it (its steps go wherever the executor sends them).

    The process's one Dagster instance, connections held, serves all its runs (``celery_steps``)."""
    job = reconstructable_job(request.job_name)
    first, last = (
        target_partition_key(job.get_definition(), k, request.target)
        for k in (request.first_key, request.last_key)
    )
    tags = {RANGE_START: first, RANGE_END: last, **request.tags}
    run_config = {**QUIET_LOGGERS, **request.run_config}
    result = dg.execute_job(
        job,
        instance=process_instance(),
        run_config=run_config,
        tags=tags,
        raise_on_error=False,
    )
    # Read off the result without entering it: entering rebuilds the run's context and initializes its
    # resources (connections to the databases included), only for reading outputs back (~10 % of a run
    # process's CPU). Success is the stored run's status.
    return RunSummary(request.job_name, f"{first}..{last}", result.success, result.run_id)


#: Modules Dagster imports lazily on a process's first run (loading the job, building the instance,
#: creating the run): ~0.3 CPU s in every run process unless the fork server has them.
FIRST_RUN_IMPORTS = (
    "dagster._utils.test.definitions",
    "dagster._core.instance.factory",
    "dagster._core.instance.runs.run_domain",
    "dagster._core.execution.plan.active",
    "dagster._core.system_config.composite_descent",
    "dagster._core.secrets.env_file",
    "dagster.components.core.snapshot",
    "dagster_postgres",
    "dagster_postgres.run_storage",
    "dagster_postgres.event_log",
    "psycopg2.extras",
    "upath.implementations.local",
    "tomlkit",
    "encodings.idna",
)
#: And those of sending steps to Celery workers (dagster-celery, Celery's Redis transport and result
#: backend): ~0.5 CPU s more in every run process of the Celery executor. Always preloaded: the fork server
#: is started once per process, by whichever backfill comes first.
FIRST_CELERY_RUN_IMPORTS = (
    "dagster_celery.executor",
    "dagster_celery.core_execution_loop",
    "celery.app.amqp",
    "celery.backends.redis",
    "celery.worker",
    "kombu.transport.redis",
)


def _preload_modules() -> list[str]:
    """The caller's main module, this module, every module of ``defs/`` (polars, statsmodels and Dagster
    come with them) and what Dagster (and Celery, for the Celery executor) would import on the first run.
    A name that cannot be imported is skipped by the fork server."""
    import autopilot_pipeline.defs as package

    found = pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    extra = (*FIRST_RUN_IMPORTS, *FIRST_CELERY_RUN_IMPORTS)
    return ["__main__", __name__, *(module.name for module in found), *extra]


def _adopt_environment(env: dict[str, str]) -> None:
    """A run process starts with the caller's environment and builds the code location once per
    environment for all its runs (``definitions.reuse_in_this_process``), with held connections to the
    application database (``resources.hold_engines``).

    It first moves the ~400,000 objects inherited from the fork server out of the garbage collector's
    reach (``gc.freeze``, what Python's documentation advises after a fork): they live as long as the
    process anyway, and every full collection would otherwise walk them all and copy the pages it touches
    (building the code location alone took 2 to 3 times its CPU)."""
    from autopilot_pipeline.definitions import reuse_in_this_process
    from autopilot_pipeline.defs.resources import hold_engines

    gc.freeze()
    os.environ.clear()
    os.environ.update(env)
    reuse_in_this_process()
    hold_engines()


def _prepare_run_process() -> None:
    """Build the code location and the Dagster instance now, while the caller registers the targets,
    rather than when the first run starts. An error is left for that run to meet again and report."""
    try:
        _repository().get_definition()
        process_instance()
    except Exception:  # noqa: BLE001
        _log.debug("run process not prepared; its first run will build what it needs", exc_info=True)


def _start_run_process(env: dict[str, str]) -> None:
    _adopt_environment(env)
    _prepare_run_process()


def run_backfill(requests: Iterable[RunRequest], parallel_runs: int = 2) -> list[RunSummary]:
    """Execute every request, ``parallel_runs`` at a time (like the run queue's concurrency limit), in
    fresh processes that inherit this environment; summaries in request order."""
    requests = list(requests)
    if parallel_runs < 1:
        raise ValueError("parallel_runs must be at least 1")
    # No fork of this process (it may hold Dagster's threads): a fork server, started once, imports Dagster
    # and the code location's modules and forks the run processes from itself, so they start in
    # milliseconds without paying those imports (~4 CPU s each, what "spawn" cost every process). The
    # server keeps the environment it started with; each run process takes this one's.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_preload_modules())
    pool = context.Pool(
        min(parallel_runs, max(1, len(requests))),
        initializer=_start_run_process,
        initargs=(dict(os.environ),),
    )
    try:
        with dg.DagsterInstance.get() as instance:  # while the run processes prepare themselves
            ensure_targets(instance)  # the target partitions exist before any run names one
        return pool.map(execute, requests, chunksize=1)
    finally:
        pool.close()  # let the processes finish on their own (terminate() interrupts Dagster mid-cleanup)
        pool.join()
