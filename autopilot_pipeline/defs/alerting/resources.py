"""Binds the Slack webhook for alert notifications (``SLACK_WEBHOOK_URL``, through ``dg.EnvVar``)."""

import os

import dagster as dg

from autopilot_pipeline.integrations.slack import SlackWebhook

SLACK_WEBHOOK_URL_ENV = "SLACK_WEBHOOK_URL"


def optional_env(name: str) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when the variable is set for this code location, else None.

    An unset ``EnvVar`` fails every run that uses the resource, but these settings are optional (no
    Slack, no Pushgateway: the step notes it and succeeds). Only presence is checked here; the value is
    still resolved by Dagster at run time and never shown in the UI.
    """
    return dg.EnvVar(name) if os.environ.get(name) else None


class SlackResource(dg.ConfigurableResource):
    """The Slack webhook (``SLACK_WEBHOOK_URL`` via ``dg.EnvVar``); unset means notifications stay pending."""

    webhook_url: str | None = None
    timeout_seconds: float = 5.0
    attempts: int = 3
    backoff_seconds: float = 0.5

    def client(self) -> SlackWebhook | None:
        """A webhook client, or None when no URL is configured."""
        if not self.webhook_url:
            return None
        return SlackWebhook(
            self.webhook_url,
            timeout_s=self.timeout_seconds,
            attempts=self.attempts,
            backoff_s=self.backoff_seconds,
        )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"slack": SlackResource(webhook_url=optional_env(SLACK_WEBHOOK_URL_ENV))})
