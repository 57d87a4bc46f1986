"""The Celery app of ``autopilot worker`` (``celery -A autopilot_pipeline.worker_app worker`` works too).

dagster_celery's step task (``execute_plan``, with one Dagster instance per pool process holding its
connections: ``defs/celery_steps.py``) on an app built from the same settings the runs send with
(``defs/executors.py``): Redis from ``AUTOPILOT_REDIS_URL``, late acknowledgement, prefetch 1. Importing
this module needs ``AUTOPILOT_REDIS_URL``; the worker also needs the Dagster instance (``DAGSTER_HOME``,
``DAGSTER_PG_URL``), the application database (``AUTOPILOT_DATABASE_URL``) and the shared state directory,
which ``autopilot worker`` sets up like every other command.
"""

from __future__ import annotations

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app

from autopilot_pipeline import runner
from autopilot_pipeline.definitions import reuse_in_this_process
from autopilot_pipeline.defs import executors
from autopilot_pipeline.defs.celery_steps import create_step_task

_url = executors.redis_url()
app = make_app(
    CeleryExecutor.for_cli(
        broker=_url, backend=_url, config_source=executors.celery_app_settings()
    ).app_args()
)
execute_plan = create_step_task(app)

# Load the code location once in the worker's main process: its pool processes are forked from it, so the
# first step of each no longer pays the imports (polars, statsmodels, every asset module: ~5 s on 2 busy cores).
# Built once per environment from then on (definitions.reuse_in_this_process), not again for every step.
reuse_in_this_process()
runner.load_definitions()
