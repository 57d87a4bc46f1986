"""The metrics domain: the ``autopilot_*`` metrics (exposition with prometheus-client), their snapshot from the
tables (``store``) and the Grafana dashboard as code. The push and the scrape endpoint render the same registry."""
