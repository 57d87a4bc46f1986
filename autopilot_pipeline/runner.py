"""Run the pipeline from Python (the CLI and tests): environment for Dagster, and in-process job runs
over partition ranges against the Postgres-backed Dagster instance."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from autopilot_pipeline import settings, shutdown
from autopilot_pipeline.defs import partitions
from autopilot_pipeline.defs.partitions import DEFAULT_TARGET, RANGE_END, RANGE_START
from autopilot_pipeline.postgres import targets
from autopilot_pipeline.postgres.server import Database, connect

# Failures are summarized by the caller in one line; the full logs stay in the Dagster instance (the UI).
QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def dagster_home() -> Path:
    return settings.state_dir() / "dagster_home"


#: Dagster writes the materializations of a step over many partitions in batches of this size (one insert
#: and one index transaction per batch instead of ~8 statements per partition); ``0`` turns batching off.
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = "100"


def configure_environment(db: Database) -> dict[str, str]:
    """Point our resources and the Dagster instance at ``db``; returns the variables set (for children)."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        settings.DATABASE_URL_ENV: db.url,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": db.dagster_url,
        "AUTOPILOT_STATE_DIR": str(settings.state_dir()),
        EVENT_BATCH_SIZE_ENV: os.environ.get(EVENT_BATCH_SIZE_ENV, EVENT_BATCH_SIZE),
    }
    os.environ.update(env)
    return env


def load_definitions() -> dg.Definitions:
    from autopilot_pipeline.definitions import defs

    return defs() if callable(defs) else defs


def sync_targets(db: Database, names: list[str]) -> None:
    """Register ``names`` (and only them) as the ``targets`` partitions of the instance ``db`` serves."""
    configure_environment(db)
    with dg.DagsterInstance.get() as instance:
        partitions.sync_targets(instance, names)


def ensure_targets(instance: dg.DagsterInstance) -> list[str]:
    """Register the rows of ``automation.targets`` (``default`` at least) as partitions before a run."""
    url = settings.configured_database_url()
    names = [DEFAULT_TARGET]
    if url:
        with connect(url) as conn:
            names = [t.name for t in targets.list_targets(conn)]
    partitions.sync_targets(instance, names)
    return names


def target_partition_key(job: dg.JobDefinition, key: str | None, target: str) -> str | None:
    """``key`` as the job's partition key: a time key gains ``target`` when the job is per target × time;
    a job partitioned by target only (profiling) runs ``target``'s partition and has no time key (asking it
    for one is a :class:`ValueError`, never a run of a partition that does not exist)."""
    if job.partitions_def == partitions.targets:
        if key not in (None, target):
            raise ValueError(f"{job.name} is partitioned by target only: it has no partition {key!r}")
        return target
    if key is not None and isinstance(job.partitions_def, dg.MultiPartitionsDefinition) and "|" not in key:
        return partitions.target_key(target, key)
    return key


@dataclass(frozen=True)
class RunSummary:
    job: str
    partitions: str
    success: bool
    run_id: str


def run_job_range(
    instance: dg.DagsterInstance,
    job_name: str,
    first_key: str,
    last_key: str,
    quiet: bool = True,
    target: str = DEFAULT_TARGET,
) -> RunSummary:
    """Materialize ``job_name`` over the partition keys first..last in one run (single-run backfill); time
    keys of a per-target job are ``target``'s."""
    job = load_definitions().resolve_job_def(job_name)
    ensure_targets(instance)
    first_key, last_key = (
        target_partition_key(job, first_key, target),
        target_partition_key(job, last_key, target),
    )
    result = job.execute_in_process(
        instance=instance,
        tags={RANGE_START: first_key, RANGE_END: last_key},
        run_config=QUIET_LOGGERS if quiet else None,
        raise_on_error=False,
    )
    shutdown.raise_if_requested()  # Dagster cancels the run on a signal; the caller must stop too
    return RunSummary(job_name, f"{first_key}..{last_key}", result.success, result.run_id)


def run_job(
    instance: dg.DagsterInstance,
    job_name: str,
    quiet: bool = True,
    resources: dict | None = None,
    partition_key: str | None = None,
    target: str = DEFAULT_TARGET,
) -> RunSummary:
    """Run a job once: unpartitioned ones (alert evaluation, metrics push) now, a partitioned one (AI ops)
    for ``partition_key`` of ``target``; profiling (partitioned by target only) profiles ``target``.

    ``resources`` overrides resource config for this run, e.g. ``{"profiling": {"settings": {"lookback_hours": 168}}}``.
    """
    job = load_definitions().resolve_job_def(job_name)
    ensure_targets(instance)
    partition_key = target_partition_key(job, partition_key, target)
    run_config: dict = dict(QUIET_LOGGERS) if quiet else {}
    if resources:
        run_config["resources"] = {key: {"config": config} for key, config in resources.items()}
    result = job.execute_in_process(
        instance=instance,
        run_config=run_config or None,
        partition_key=partition_key,
        raise_on_error=False,
    )
    shutdown.raise_if_requested()
    return RunSummary(job_name, partition_key or "now", result.success, result.run_id)


def hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H:00")


def day_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def analysis_hour(last: datetime, now: datetime | None = None) -> str:
    """The AI-ops partition analysed after loading data up to ``last``: the hour ending at the end of the
    data, or at the current hour when the data runs up to now (an hour in progress is never analysed)."""
    hour = timedelta(hours=1)
    data_end = last.replace(minute=0, second=0, microsecond=0) + hour
    current = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour_key(min(data_end, current) - hour)


def quiet_dagster_logs() -> None:
    for name in ("dagster", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def materialize_history(
    instance: dg.DagsterInstance,
    first: datetime,
    last: datetime,
    on_step: Callable[[str], None] = print,
    target: str = DEFAULT_TARGET,
) -> list[RunSummary]:
    """Materialize every job over ``[first, last]`` of ``target``: hourly tables first, then the daily
    rollups, profiling and AI ops (alert evaluation and the push cover every target).

    Each job runs once over its whole range (single-run backfill); steps are reported through ``on_step``.
    """
    plan = [
        ("health_hourly_job", hour_key(first), hour_key(last), "health tables"),
        ("daily_rollups_job", day_key(first), day_key(last), "daily rollups and release stats"),
    ]
    summaries = []
    for job_name, first_key, last_key, what in plan:
        on_step(f"{what} ({first_key} .. {last_key})")
        summaries.append(run_job_range(instance, job_name, first_key, last_key, target=target))
    span_hours = max(24.0, (last - first).total_seconds() / 3600 + 1)
    on_step(f"performance profiling (query log of the last {span_hours:.0f} h, table statistics)")
    summaries.append(
        run_job(
            instance,
            "profiling_job",
            resources={"profiling": {"settings": {"lookback_hours": span_hours}}},
            target=target,
        )
    )
    on_step("AI ops (anomalies, trends, failure predictions, optimizations, insights)")
    summaries.append(run_job(instance, "aiops_job", partition_key=analysis_hour(last), target=target))
    on_step("alert rules (evaluated now)")
    summaries.append(run_job(instance, "alerting_job"))
    if os.environ.get("PUSHGATEWAY_URL"):
        on_step("metrics push to the Pushgateway")
        summaries.append(run_job(instance, "metrics_push_job"))
    return summaries
