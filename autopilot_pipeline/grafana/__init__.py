"""Grafana as code: the autopilot dashboard and helpers to check its queries."""

from autopilot_pipeline.grafana.dashboard import build_dashboard, export, panel_queries, render

__all__ = ["build_dashboard", "export", "panel_queries", "render"]
