"""What a metric's name says about it: its kind, the direction that counts as bad, a label for people, and
the severity of a finding. Shared by the detector, trends, forecasts and insights. Pure."""

from __future__ import annotations

from typing import Literal

__all__ = ["DEFAULT_DIRECTION", "Direction", "metric_kind", "metric_label", "severity"]

Direction = Literal["both", "up", "down"]

_KIND_LABEL = {
    "latency": "Response time",
    "error_rate": "Error rate",
    "uptime": "Uptime",
    "degraded": "Degraded share",
}


def metric_kind(metric: str) -> str:
    """Classify a metric name: latency, error_rate, error_count, uptime, degraded (the share of degraded
    checks) or custom (decides defaults)."""
    m = metric.lower()
    if "uptime" in m or "availability" in m:
        return "uptime"
    if "degraded" in m:
        return "degraded"
    if "error" in m or "fail" in m:
        return "error_rate" if ("ratio" in m or "rate" in m or "pct" in m) else "error_count"
    if "response" in m or "latency" in m or m.endswith("_ms") or m.startswith("p9") or "duration" in m:
        return "latency"
    return "custom"


DEFAULT_DIRECTION: dict[str, Direction] = {
    "latency": "up",
    "error_rate": "up",
    "error_count": "up",
    "uptime": "down",
    "degraded": "up",
    "custom": "both",
}


def metric_label(metric: str) -> str:
    kind = metric_kind(metric)
    if kind == "error_count":
        return "Error count"
    return _KIND_LABEL.get(kind, metric.replace("_", " ").capitalize())


def severity(confidence: float, ratio: float | None) -> str:
    if ratio is not None and ratio >= 10:
        return "critical"
    if confidence >= 0.99:
        return "critical"
    if confidence >= 0.95 or (ratio is not None and ratio >= 5):
        return "high"
    if confidence >= 0.8:
        return "medium"
    return "low"
