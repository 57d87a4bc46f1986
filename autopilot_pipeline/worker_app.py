"""The Celery app of ``autopilot worker`` (``celery -A autopilot_pipeline.worker_app worker`` works too).

dagster_celery's step task (``execute_plan``, with one Dagster instance per pool process holding its
connections: ``defs/celery_steps.py``) on an app built from the same settings the runs send with
(``defs/executors.py``): Redis from ``AUTOPILOT_REDIS_URL``, late acknowledgement, prefetch 1. Importing
this module needs ``AUTOPILOT_REDIS_URL``; the worker also needs the Dagster instance (``DAGSTER_HOME``,
``DAGSTER_PG_URL``), the application database (``AUTOPILOT_DATABASE_URL``) and the shared state directory,
which ``autopilot worker`` sets up like every other command.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os

import polars as pl
from celery.signals import celeryd_after_setup, worker_process_init
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app

from autopilot_pipeline import runner
from autopilot_pipeline.definitions import reuse_in_this_process
from autopilot_pipeline.defs import executors
from autopilot_pipeline.defs.celery_steps import create_step_task, prepare_for_fork, warm_step_path
from autopilot_pipeline.defs.compute_logs import capture_without_mirror
from autopilot_pipeline.defs.resources import hold_engines

#: Modules a worker's pool process imports on its first step unless the worker's main process has them.
FIRST_STEP_IMPORTS = (
    "dagster._core.storage.base_storage",
    "dagster._core.secrets.env_file",
    "dagster_postgres",
    "dagster_postgres.run_storage",
    "dagster_postgres.event_log",
    "dagster_postgres.schedule_storage",
    "psycopg2.extras",
    "adbc_driver_postgresql.dbapi",
    "upath.implementations.local",
)

_url = executors.redis_url()
app = make_app(
    CeleryExecutor.for_cli(
        broker=_url, backend=_url, config_source=executors.celery_app_settings()
    ).app_args()
)
execute_plan = create_step_task(app)

# Load the code location once in the worker's main process: its pool processes are forked from it, so the
# first step of each no longer pays the imports (polars, statsmodels, every asset module: ~5 s on 2 busy cores)
# nor the build (~0.4 s). Built once per environment from then on (definitions.reuse_in_this_process), not
# again for every step. Its steps take held connections to the application database (resources.hold_engines).
reuse_in_this_process()
hold_engines()
runner.load_definitions()
# And what a pool process would import lazily on its first step (Dagster's storage modules when it builds
# its instance, the database drivers, the Parquet path layer): ~0.5 CPU s per pool process otherwise.
for _module in FIRST_STEP_IMPORTS:
    importlib.import_module(_module)


@celeryd_after_setup.connect
def _warm_before_the_pool_starts(**_: object) -> None:
    """Build the Dagster instance and warm the step's path in the main process before Celery forks the
    pool, so that no pool process pays them on its first step (``celery_steps.prepare_for_fork``,
    ``warm_step_path``): a worker's first step took ~1.3 s against ~0.2 s for the others on the scale-out
    benchmark. The worker answers pings only after this: Celery starts its consumer after this signal.
    Its steps' output goes to their compute logs without Dagster's mirror processes (``compute_logs``)."""
    capture_without_mirror()
    warm_step_path(prepare_for_fork(), runner.load_definitions())


@worker_process_init.connect
def _start_pool_process(**_: object) -> None:
    """A pool process keeps what it inherited from the main process for its life: out of the garbage
    collector's reach (``gc.freeze``), full collections no longer walk (and copy) ~400,000 objects. It logs
    the threads polars uses in it (``autopilot worker``: its share of the cores)."""
    gc.freeze()
    logging.getLogger(__name__).info(
        "pool process %d: polars uses %d threads", os.getpid(), pl.thread_pool_size()
    )
