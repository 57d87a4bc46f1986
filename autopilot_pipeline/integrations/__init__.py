"""Clients for outside services (Slack, Prometheus Pushgateway) with timeouts and retries built in.

Each module offers a plain client (usable from tests, the CLI and sensors) and a Dagster resource wrapping
it; secrets reach the resources only through ``dg.EnvVar``.
"""
