"""dagster-celery's step task and executor with one Dagster instance per process, holding its connections.

Measured on the scale-out benchmark (docs/BENCHMARKS.md), most of a Celery step's cost was not the step:
dagster-celery's task builds a new ``DagsterInstance`` for every step, and Dagster's Postgres storages
open a new connection for every statement (SQLAlchemy ``NullPool``), so one hourly-range step of ours
opened ~120 connections (each a Postgres backend started and torn down) to write its events. The run
processes did the same for the planned-materialization events of every run they created.

What changes here, with dagster-celery's wire contract kept (task name ``execute_plan``, its two keyword
arguments, a list of serialized events returned, the ``Celery worker`` engine event first):

- :func:`process_instance`: one instance per process and instance ref, with pooled connections
  (Dagster's ``optimize_for_webserver``: a held connection per storage plus overflow, what its own
  long-lived webserver does; no statement timeout). A worker's pool process and a backfill's run
  process live for many steps or runs, so they keep it; a forked child builds its own, or takes the one
  its parent built before forking (:func:`prepare_for_fork`) and opens its own pooled connections.
- :func:`create_step_task`: the worker side of ``execute_plan`` on that instance, returning only the events
  the sending run acts on (:data:`RETURNED_EVENTS`).
- :func:`step_celery_executor`: dagster-celery's executor and execution loop, sending each step with
  ``send_task`` by name instead of registering the task on the app again for every step (which made
  Celery warn "Task name 'execute_plan' is already registered" once per step in every run process), and
  waking up when a step's result is published (:class:`_ResultWaker`) instead of looking every second.

Celery and dagster-celery are imported only when used: the code location loads every module of ``defs/``,
also in processes that run in process.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster import DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import DagsterEventType, EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.execution.retries import RetryMode
from dagster._core.instance.ref import InstanceRef
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import pack_value, serialize_value, unpack_value

from autopilot_pipeline.postgres import pools

__all__ = [
    "RETURNED_EVENTS",
    "create_step_task",
    "hold_connections",
    "prepare_for_fork",
    "process_instance",
    "warm_step_path",
    "step_celery_executor",
]

#: dagster_celery.config.TASK_EXECUTE_PLAN_NAME: the name the workers know the step task by.
TASK_NAME = "execute_plan"

#: Connections a process may open beyond the one it holds per storage, for nested use (returned at once).
POOL_OVERFLOW = 8
#: Seconds after which a held connection is replaced (Dagster's webserver default).
POOL_RECYCLE_S = 3600

#: The events a step returns to the run that sent it, besides the worker's "Celery worker" engine event: what
#: dagster-celery's loop acts on (``ActiveExecution.handle_event``: a step's end, its retry, its outputs, a
#: resource that failed to start). The worker has already written every event of the step to the event log;
#: the rest (one materialization per partition with its metadata, ~2.7 kB each, most of a step's events)
#: was serialized by the worker and deserialized by the run only to be dropped: ~10 % of a Celery run
#: process's CPU (py-spy). A Celery run's in-memory result (``execute_job``) therefore holds only these;
#: its full record is the event log, as for any run the daemon launches.
RETURNED_EVENTS = frozenset(
    {
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.STEP_UP_FOR_RETRY,
        DagsterEventType.STEP_OUTPUT,
        DagsterEventType.RESOURCE_INIT_FAILURE,
    }
)

_instances: dict[tuple[int, str], DagsterInstance] = {}
#: Instances built by a parent before it forks, by serialized ref, connections not held (see prepare_for_fork).
_prepared: dict[str, DagsterInstance] = {}
_log = logging.getLogger(__name__)


def hold_connections(instance: DagsterInstance) -> DagsterInstance:
    """Pooled connections for ``instance``'s storages instead of one connection per statement.

    Each checkout first drops a connection its server has closed (``pools.drop_dead_on_checkout``, no round
    trip): a held connection outlives a restart of Dagster's Postgres, and without the check the first
    statement of every storage in every long-lived process failed after one (in a worker: a step's event
    write, so the step and its run failed)."""
    instance.optimize_for_webserver(
        statement_timeout=0, pool_recycle=POOL_RECYCLE_S, max_overflow=POOL_OVERFLOW
    )
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        engine = getattr(storage, "_engine", None)
        if engine is not None:
            pools.drop_dead_on_checkout(engine)
    return instance


def process_instance(ref: InstanceRef | None = None) -> DagsterInstance:
    """This process's instance for ``ref`` (``DAGSTER_HOME``'s when None), built once, connections held.

    Keyed by PID too: a forked child never shares its parent's sockets. Never closed: it lives as long
    as the process.
    """
    serialized = serialize_value(ref) if ref is not None else None
    key = (os.getpid(), serialized if serialized is not None else os.environ.get("DAGSTER_HOME", ""))
    instance = _instances.get(key)
    if instance is None:
        instance = _prepared.get(serialized) if serialized is not None else None
        if instance is None:
            instance = DagsterInstance.from_ref(ref) if ref is not None else DagsterInstance.get()
            _log.info("Dagster instance built (pid %d)", os.getpid())
        _instances[key] = instance = hold_connections(instance)
    return instance


def prepare_for_fork() -> DagsterInstance:
    """Build ``DAGSTER_HOME``'s instance in a process that forks the processes which will use it (a Celery
    worker's main process, before its pool starts), so that none of them pays it on its first step.

    Building it reads the configuration, imports and checks every storage (their tables, columns and
    migrations: ~0.3 s of Python and a dozen catalog queries). Its storages connect per statement
    (``NullPool``) until :func:`hold_connections`, so no connection is open when the children inherit it;
    each child then opens its own (:func:`process_instance` holds the connections in the child). Only a
    step whose run names the same instance ref gets it; any other builds its own as before.
    """
    instance = DagsterInstance.get()
    _prepared[serialize_value(instance.get_ref())] = instance
    _log.info("Dagster instance built (pid %d)", os.getpid())
    return instance


def warm_step_path(instance: DagsterInstance, definitions: dg.Definitions) -> None:
    """Do once, before a worker forks its pool, what every pool process otherwise did on its first step
    (measured with py-spy, besides building the instance): the repository of the code location and each
    job's config schema, and the storages' schema checks (remembered, see ``instance_storage``). Every
    connection opened here is closed again, so the pool processes inherit none.

    Not the first read of the application database: ADBC and Arrow start native threads, and a process
    forked after that can hang on a lock one of them held (a pool process did, on its first step).
    """
    repository = definitions.get_repository_def()
    for job in repository.get_all_jobs():
        job.run_config_schema  # noqa: B018 (a cached property: built here, once)
    instance.get_run_records(limit=1)
    instance.get_asset_records(list(repository.asset_graph.get_all_asset_keys())[:1])


def create_step_task(app: Any, **task_kwargs: Any) -> Any:
    """Register ``execute_plan`` on the workers' Celery ``app``: run one step of a run, return its events."""
    from dagster_celery.core_execution_loop import DELEGATE_MARKER
    from dagster_celery.executor import CeleryExecutor

    @app.task(bind=True, name=TASK_NAME, **task_kwargs)
    def execute_plan(self: Any, execute_step_args_packed: dict, executable_dict: dict) -> list[str]:
        args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
        instance = process_instance(args.instance_ref)
        job = ReconstructableJob.from_dict(executable_dict)
        run = instance.get_run_by_id(args.run_id)
        if run is None:
            raise RuntimeError(f"run {args.run_id} is not in the Dagster instance this worker uses")
        plan = create_execution_plan(
            job, run.run_config, step_keys_to_execute=args.step_keys_to_execute, known_state=args.known_state
        )
        keys = ", ".join(args.step_keys_to_execute or [])
        taken = instance.report_engine_event(
            f"Executing steps {keys} in celery worker",
            run,
            EngineEventData(
                {"step_keys": keys, "Celery worker": self.request.hostname}, marker_end=DELEGATE_MARKER
            ),
            CeleryExecutor,
            step_key=plan.step_handle_for_single_step_plans().to_key(),
        )
        events = execute_plan_iterator(
            execution_plan=plan,
            job=job,
            dagster_run=run,
            instance=instance,
            retry_mode=args.retry_mode,
            run_config=run.run_config,
        )
        returned = [taken, *(event for event in events if event.event_type in RETURNED_EVENTS)]
        return [serialize_value(event) for event in returned]

    return execute_plan


class _ResultWaker:
    """Stands in for the ``time`` module of dagster-celery's execution loop, whose only use of it is the sleep
    between two looks at the steps' results: the sleep ends as soon as a result is published.

    Celery's Redis result backend publishes every result on a channel of its task, and the sending process
    subscribes to it when it sends the task; :func:`_send_step` also registers the result as pending, so a
    result read from the channel is kept on it (the loop's next look needs no round trip) instead of in the
    backend's buffer of unclaimed results. A sleep that only waited delayed every dependent step by half the
    interval on average, and made every run's end wait for the next tick. With another result backend (no
    result consumer) it sleeps, as before.
    """

    def __init__(self) -> None:
        self._local = threading.local()  # the backend of the loop running on this thread

    def watch(self, result: Any) -> None:
        backend = result.backend
        if getattr(backend, "result_consumer", None) is not None:
            backend.add_pending_result(result, start_drainer=False)
            self._local.backend = backend

    def sleep(self, seconds: float) -> None:
        backend = getattr(self._local, "backend", None)
        if backend is None:
            time.sleep(seconds)
        else:
            backend.result_consumer.drain_events(timeout=seconds)


_waker = _ResultWaker()


def _send_step(app: Any, plan_context: Any, step: Any, queue: str, priority: int, known_state: Any) -> Any:
    """Send one step to the workers by task name (no task object needed on the sending side), its result
    watched (:class:`_ResultWaker`)."""
    job = plan_context.reconstructable_job
    args = ExecuteStepArgs(
        job_origin=job.get_python_origin(),
        run_id=plan_context.dagster_run.run_id,
        step_keys_to_execute=[step.key],
        instance_ref=plan_context.instance.get_ref(),
        retry_mode=plan_context.executor.retries.for_inner_plan(),
        known_state=known_state,
        print_serialized_events=True,
    )
    result = app.send_task(
        TASK_NAME,
        kwargs={"execute_step_args_packed": pack_value(args), "executable_dict": job.to_dict()},
        priority=priority,
        queue=queue,
        routing_key=f"{queue}.{TASK_NAME}",
    )
    _waker.watch(result)
    return result


@functools.cache
def _executor_class() -> type:
    from dagster_celery import core_execution_loop
    from dagster_celery.executor import CeleryExecutor

    class StepCeleryExecutor(CeleryExecutor):
        """dagster-celery's executor and loop; steps are sent by :func:`_send_step`, results looked at when
        one is published and at least every ``AUTOPILOT_CELERY_POLL_INTERVAL`` seconds (0.2 by default; also
        how soon a cancelled run revokes its steps)."""

        poll_interval_s: float = 1.0  # set from the setting when the executor is built

        def execute(self, plan_context: Any, execution_plan: Any) -> Any:
            # Between its looks at the results the loop calls time.sleep(TICK_SECONDS), both module globals.
            core_execution_loop.TICK_SECONDS = self.poll_interval_s
            core_execution_loop.time = _waker
            return core_execution_loop.core_celery_execution_loop(
                plan_context, execution_plan, step_execution_fn=_send_step
            )

    return StepCeleryExecutor


@functools.cache
def step_celery_executor(poll_interval_s: Callable[[], float]) -> dg.ExecutorDefinition:
    """dagster-celery's ``celery_executor`` (same config schema and name) building the executor above;
    ``poll_interval_s`` reads the setting in the run's process."""
    from dagster_celery.executor import CELERY_CONFIG

    @dg.executor(
        name="celery", config_schema=CELERY_CONFIG, requirements=dg.multiple_process_executor_requirements()
    )
    def celery(init_context: dg.InitExecutorContext) -> dg.Executor:
        config = init_context.executor_config
        executor = _executor_class()(
            broker=config.get("broker"),
            backend=config.get("backend"),
            config_source=config.get("config_source"),
            include=config.get("include"),
            retries=RetryMode.from_config(config["retries"]),
        )
        executor.poll_interval_s = poll_interval_s()
        return executor

    return celery
