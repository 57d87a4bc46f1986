-- Each Slack notification is recorded (alert, transition, time) and committed BEFORE it is sent, then
-- settled: sent, failed (certainly not delivered: stays pending, retried later) or unconfirmed (sent but
-- unanswered, or the notifier died mid-send: never resent, so Slack sees it at most once).
CREATE TABLE IF NOT EXISTS automation.alert_notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   uuid        NOT NULL,
    history_id   bigint      NOT NULL REFERENCES automation.alert_history (id) ON DELETE CASCADE,
    transition   text        NOT NULL CHECK (transition IN ('firing', 'repeat', 'resolved')),
    due_at       timestamptz NOT NULL,                       -- the notifier's "now"
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    status       text        NOT NULL DEFAULT 'sending'
        CHECK (status IN ('sending', 'sent', 'failed', 'unconfirmed')),
    attempts     integer     NOT NULL DEFAULT 0,
    finished_at  timestamptz,
    error        text
);
CREATE INDEX IF NOT EXISTS alert_notifications_history_idx ON automation.alert_notifications (history_id);
CREATE INDEX IF NOT EXISTS alert_notifications_sending_idx
    ON automation.alert_notifications (status) WHERE status = 'sending';
