"""Binds resources once for the whole code location; secrets only through ``EnvVar``."""

import dagster as dg

from autopilot_pipeline import settings
from autopilot_pipeline.resources import PartitionedFrameIOManager, PostgresResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "postgres": PostgresResource(database_url=dg.EnvVar(settings.DATABASE_URL_ENV)),
            "frames": PartitionedFrameIOManager(base_dir=str(settings.state_dir() / "frames")),
        }
    )
