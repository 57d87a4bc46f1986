"""``autopilot worker``: a Celery worker that runs Dagster steps taken from Redis (``AUTOPILOT_EXECUTOR=celery``).

Start as many as the machines allow, anywhere that reaches Redis, the Postgres of the Dagster instance and
the application database, and shares the state directory (the Parquet frames handed between assets). A
worker that dies loses nothing: its task was not acknowledged, so Redis hands it to another worker
(``defs/executors.py``). SIGTERM or Ctrl-C: Celery's warm shutdown (finish the task in hand, then exit).
"""

from __future__ import annotations

import argparse
import os

from autopilot_pipeline import runner
from autopilot_pipeline.defs import executors
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import server

#: The size of polars' thread pool in every process that reads it (an explicit setting wins).
POLARS_THREADS_ENV = "POLARS_MAX_THREADS"


def share_of_cores(processes: int) -> str:
    """Threads for polars in each of ``processes`` step-running processes that share this machine's cores.

    Polars sizes its pool to every core of the machine in each process, so two pool processes on two cores
    ran four threads that spun waiting for each other: measured on the scale-out benchmark, the 2-worker
    backfill's workers burned 4.2 CPU s against 3.6 s with one thread each, for the same steps (15 % more
    wall time). A single process keeps every core.
    """
    return str(max(1, (os.cpu_count() or 1) // max(1, processes)))


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="start a Celery worker that runs pipeline steps (AUTOPILOT_EXECUTOR=celery, AUTOPILOT_REDIS_URL)",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="steps run at once by this worker, one process each (default 1; about one per core); each "
        "process gets its share of the cores for polars unless POLARS_MAX_THREADS is set",
    )
    worker.add_argument(
        "--name", default=None, help="worker name shown in the run logs (default autopilot-<pid>)"
    )
    worker.add_argument(
        "--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )
    worker.set_defaults(handler=run)


def celery_argv(concurrency: int, name: str, loglevel: str) -> list[str]:
    """Arguments of Celery's ``worker`` command: our queue, one task per process at a time, no peer
    chatter (gossip, mingle) that only slows the start."""
    return [
        "worker",
        "--queues", executors.QUEUE,
        "--concurrency", str(concurrency),
        "--prefetch-multiplier", "1",
        "--hostname", f"{name}@%h",
        "--loglevel", loglevel,
        "--without-gossip",
        "--without-mingle",
    ]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise AutopilotError(f"--concurrency must be at least 1, not {args.concurrency}")
    try:
        executors.redis_url()
        executors.visibility_timeout_s()
    except ValueError as exc:
        raise AutopilotError(str(exc)) from None
    db = server.resolve()
    try:
        runner.configure_environment(db)
        os.environ[executors.EXECUTOR_ENV] = "celery"
        os.environ.setdefault(POLARS_THREADS_ENV, share_of_cores(args.concurrency))
        from autopilot_pipeline import worker_app

        name = args.name or f"autopilot-{os.getpid()}"
        worker_app.app.worker_main(celery_argv(args.concurrency, name, args.loglevel))
    finally:
        server.release(db)
    return 0
