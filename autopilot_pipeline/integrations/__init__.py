"""Clients for outside services (Slack, Prometheus Pushgateway, OpenAI, a local Prometheus) with timeouts and
retries built in. Plain clients, usable from the CLI, the tests and Dagster alike: the Dagster resources that
wrap them live in ``defs/`` (secrets reach them only through ``dg.EnvVar``)."""
