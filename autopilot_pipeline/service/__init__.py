"""The HTTP door: the seed's ``metrics-exporter`` and ``ai-ops-analyzer`` routes (plus ``/metrics``,
``/healthz``, ``/readyz``) as an ASGI app on uvicorn, over the same code as the CLI and the Dagster assets."""
