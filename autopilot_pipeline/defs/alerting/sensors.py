"""Sends pending alert notifications to Slack: new firings, repeats of long incidents, resolutions.

Runs outside the evaluation on purpose: a slow or down webhook delays messages, never evaluations, and
what could not be delivered stays pending in ``alert_history`` and is retried at the next tick.
"""

import dagster as dg

from autopilot_pipeline.alerting.notifications import send_pending_notifications
from autopilot_pipeline.defs.alerting.resources import SlackResource
from autopilot_pipeline.defs.resources import PostgresResource


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends pending alert notifications to Slack (grouped; retried until delivered).",
)
def alert_notifications_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, slack: SlackResource
) -> dg.SkipReason:
    with postgres.connect() as conn:
        report = send_pending_notifications(conn, slack.client())
    if report.error:
        context.log.warning(f"{report.error}; {report.still_pending} notification(s) will be retried")
    summary = (
        f"{report.messages_sent} message(s): {report.firing_notified} firing, {report.resolved_notified} "
        "resolved; "
        f"{report.muted} muted, {report.still_pending} pending"
    )
    return dg.SkipReason(f"{summary}{'; ' + report.note if report.note else ''}")
