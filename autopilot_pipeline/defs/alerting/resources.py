"""Binds the Slack webhook for alert notifications (``SLACK_WEBHOOK_URL``, through ``dg.EnvVar``)."""

import os

import dagster as dg

from autopilot_pipeline.integrations.slack import SlackResource

SLACK_WEBHOOK_URL_ENV = "SLACK_WEBHOOK_URL"


def optional_env(name: str) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when the variable is set for this code location, else None.

    An unset ``EnvVar`` fails every run that uses the resource, but these settings are optional (no
    Slack, no Pushgateway: the step notes it and succeeds). Only presence is checked here; the value is
    still resolved by Dagster at run time and never shown in the UI.
    """
    return dg.EnvVar(name) if os.environ.get(name) else None


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"slack": SlackResource(webhook_url=optional_env(SLACK_WEBHOOK_URL_ENV))})
