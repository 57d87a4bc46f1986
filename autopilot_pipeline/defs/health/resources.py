"""The health settings as a resource, read from the environment once, when the code location loads."""

import os

import dagster as dg

from autopilot_pipeline.health.settings import HealthSettings


class HealthConfig(dg.Config, HealthSettings):
    """:class:`HealthSettings` as Dagster config, editable per run."""


class HealthResource(dg.ConfigurableResource):
    """The health domain's settings for the ingestion assets (defaults and reasons: :class:`HealthSettings`)."""

    settings: HealthConfig = HealthConfig()


@dg.definitions
def resources() -> dg.Definitions:
    settings = HealthSettings.from_env(os.environ)
    return dg.Definitions(
        resources={"health": HealthResource(settings=HealthConfig(**settings.model_dump()))}
    )
