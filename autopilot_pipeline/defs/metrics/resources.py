"""Binds the Pushgateway (``PUSHGATEWAY_URL`` and optional basic auth, through ``dg.EnvVar``)."""

import dagster as dg
from prometheus_client import CollectorRegistry

from autopilot_pipeline.defs.alerting.resources import optional_env
from autopilot_pipeline.integrations.pushgateway import JOB, PushError, push

PUSHGATEWAY_URL_ENV = "PUSHGATEWAY_URL"


class PushgatewayResource(dg.ConfigurableResource):
    """Where to push (``PUSHGATEWAY_URL``, optional ``PUSHGATEWAY_USERNAME``/``PUSHGATEWAY_PASSWORD``, all via
    ``dg.EnvVar``); with no URL the push is skipped."""

    url: str | None = None
    username: str | None = None
    password: str | None = None
    job: str = JOB
    timeout_seconds: float = 10.0
    attempts: int = 3
    backoff_seconds: float = 1.0

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def push(self, registry: CollectorRegistry, target: str | None = None) -> int:
        """PUT ``registry`` as this job's group (of ``target``, when given)."""
        if not self.url:
            raise PushError("PUSHGATEWAY_URL is not set")
        return push(
            registry,
            self.url,
            self.job,
            self.username,
            self.password,
            self.timeout_seconds,
            self.attempts,
            self.backoff_seconds,
            grouping_key={"target": target} if target else None,
        )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "pushgateway": PushgatewayResource(
                url=optional_env(PUSHGATEWAY_URL_ENV),
                username=optional_env("PUSHGATEWAY_USERNAME"),
                password=optional_env("PUSHGATEWAY_PASSWORD"),
            )
        }
    )
