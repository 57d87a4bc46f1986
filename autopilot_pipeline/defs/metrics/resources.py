"""Binds the Pushgateway (``PUSHGATEWAY_URL`` and optional basic auth, through ``dg.EnvVar``)."""

import dagster as dg

from autopilot_pipeline.defs.alerting.resources import optional_env
from autopilot_pipeline.integrations.pushgateway import PushgatewayResource

PUSHGATEWAY_URL_ENV = "PUSHGATEWAY_URL"


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
