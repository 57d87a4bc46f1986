"""The alerting engine (seed Phase 5 section 2): rules in ``automation.alert_rules``, Prometheus-exact
state in ``automation.alert_state``, every firing in ``automation.alert_history``, maintenance windows in
``automation.alert_suppressions``, and grouped Slack notifications. See docs/ALERTING_RULES.md.
"""

from autopilot_pipeline.alerting.engine import (
    EvaluationResult,
    evaluate_alert_rules,
    fire_alert,
    resolve_alert,
)
from autopilot_pipeline.alerting.notifications import NotificationReport, send_pending_notifications

__all__ = [
    "EvaluationResult",
    "NotificationReport",
    "evaluate_alert_rules",
    "fire_alert",
    "resolve_alert",
    "send_pending_notifications",
]
