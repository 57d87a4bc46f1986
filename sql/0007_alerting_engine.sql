-- The alerting engine's bookkeeping (docs/ALERTING_RULES.md): notification state on alert_history, a
-- per-rule repeat interval, an evaluation log, and the "one open firing row per instance" invariant.

-- Re-notify a long incident every N minutes (NULL: the engine's default, 4 hours).
ALTER TABLE automation.alert_rules
    ADD COLUMN IF NOT EXISTS repeat_interval_minutes integer CHECK (repeat_interval_minutes > 0);

-- Notifications are an outbox on the history rows: a row is "pending" until Slack has accepted it, so a
-- down webhook delays a message but never loses it, and evaluation never waits for Slack.
ALTER TABLE automation.alert_history
    ADD COLUMN IF NOT EXISTS resolution           text,                          -- why it stopped firing
    ADD COLUMN IF NOT EXISTS resolved_suppressed  boolean NOT NULL DEFAULT false,  -- resolved inside a window
    ADD COLUMN IF NOT EXISTS last_notified_at     timestamptz,                   -- last firing/repeat message
    ADD COLUMN IF NOT EXISTS resolved_notified_at timestamptz,                   -- resolved message sent
    ADD COLUMN IF NOT EXISTS notify_attempts      integer NOT NULL DEFAULT 0,    -- failed deliveries so far
    ADD COLUMN IF NOT EXISTS last_notify_error    text;

-- At most one firing row per (rule, component): the engine opens it when an instance fires and closes it
-- when the instance resolves.
CREATE UNIQUE INDEX IF NOT EXISTS alert_history_open_instance_idx
    ON automation.alert_history (rule_id, component) WHERE status = 'firing';
CREATE INDEX IF NOT EXISTS alert_history_resolved_unnotified_idx
    ON automation.alert_history (resolved_at) WHERE status = 'resolved' AND resolved_notified_at IS NULL;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'alert_suppressions_weekdays_valid') THEN
        ALTER TABLE automation.alert_suppressions ADD CONSTRAINT alert_suppressions_weekdays_valid
            CHECK (weekdays IS NULL OR (cardinality(weekdays) > 0 AND weekdays <@ '{1,2,3,4,5,6,7}'::smallint[]));
    END IF;
END
$$;

-- One row per evaluation: what the Dagster asset reports, and the engine's guard against evaluating out of
-- time order (an evaluation at or before the last one is refused).
CREATE TABLE IF NOT EXISTS automation.alert_evaluations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    evaluated_at    timestamptz      NOT NULL,
    rules_evaluated integer          NOT NULL,
    rules_skipped   integer          NOT NULL,
    instances       integer          NOT NULL,
    pending         integer          NOT NULL,
    firing          integer          NOT NULL,
    fired           integer          NOT NULL,
    resolved        integer          NOT NULL,
    skipped         jsonb            NOT NULL DEFAULT '[]'::jsonb,   -- [{rule_id, rule, reason}]
    duration_ms     double precision,
    created_at      timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_evaluations_evaluated_at_idx ON automation.alert_evaluations (evaluated_at);
