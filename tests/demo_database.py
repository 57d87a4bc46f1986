"""A database as ``autopilot demo`` leaves it, for the modules that read analyses (AI ops, the HTTP service)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from autopilot_pipeline import runner
from autopilot_pipeline.demo.store import load_demo_data

from .conftest import TEMPLATE, _create_database, _drop_database

OPTIONAL_SERVICES = ("SLACK_WEBHOOK_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "PUSHGATEWAY_URL")


@contextmanager
def materialized_demo(pg_server: str, state_dir: Path, end: datetime, prefix: str) -> Iterator[str]:
    """Four days of demo data for three components ending at ``end`` (seed 11), the hourly health tables
    materialized; the environment points at it (no Slack, OpenAI or Pushgateway) until the block ends, and
    the database is dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = _create_database(pg_server, name, template=TEMPLATE)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AUTOPILOT_DATABASE_URL", url)
            env.setenv("AUTOPILOT_STATE_DIR", str(state_dir))
            for var in OPTIONAL_SERVICES:
                env.delenv(var, raising=False)
            load_demo_data(url, days=4, components=3, seed=11, replace=False, end=end, app_scale=0.01)
            with dg.DagsterInstance.ephemeral() as instance:
                first, last = (
                    runner.hour_key(end - timedelta(days=4)),
                    runner.hour_key(end - timedelta(hours=1)),
                )
                assert runner.run_job_range(instance, "health_hourly_job", first, last).success
            yield url
    finally:
        _drop_database(pg_server, name)
