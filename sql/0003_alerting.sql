-- Table-driven alerting (seed Phase 5 section 2).
CREATE TABLE IF NOT EXISTS automation.alert_rules (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                    text             NOT NULL UNIQUE,
    description             text,
    metric_name             text             NOT NULL,
    condition               text             NOT NULL CHECK (condition IN ('>', '>=', '<', '<=', '=', '!=')),
    threshold               double precision NOT NULL,
    duration_minutes        integer          NOT NULL DEFAULT 0 CHECK (duration_minutes >= 0),
    severity                text             NOT NULL DEFAULT 'warning'
        CHECK (severity IN ('info', 'warning', 'critical')),
    notify_slack            boolean          NOT NULL DEFAULT false,
    enabled                 boolean          NOT NULL DEFAULT true,
    recovery_threshold      double precision,                      -- hysteresis: resolve only past this
    keep_firing_for_minutes integer          NOT NULL DEFAULT 0 CHECK (keep_firing_for_minutes >= 0),
    no_data_policy          text             NOT NULL DEFAULT 'ok'
        CHECK (no_data_policy IN ('ok', 'keep_last', 'alert')),
    created_at              timestamptz      NOT NULL DEFAULT now(),
    updated_at              timestamptz      NOT NULL DEFAULT now()
);

INSERT INTO automation.alert_rules (name, description, metric_name, condition, threshold, duration_minutes, severity, notify_slack)
VALUES
    ('Low Uptime', 'Uptime below 95%', 'uptime_percentage', '<', 95, 5, 'warning', true),
    ('Critical Uptime', 'Uptime below 90%', 'uptime_percentage', '<', 90, 5, 'critical', true),
    ('High Error Rate', 'More than 10 errors per hour', 'errors_per_hour', '>', 10, 10, 'warning', true),
    ('Migration Failure', 'A database migration failed', 'migration_failures', '>', 0, 0, 'critical', true),
    ('Slow Response Time', 'p95 response time above 5 s', 'response_time_p95_ms', '>', 5000, 5, 'warning', true),
    ('Critical Response Time', 'p95 response time above 10 s', 'response_time_p95_ms', '>', 10000, 5, 'critical', true)
ON CONFLICT (name) DO NOTHING;

-- One instance per (rule, component): the engine's durable state, so a restart neither re-pages
-- nor loses pending progress.
CREATE TABLE IF NOT EXISTS automation.alert_state (
    rule_id           bigint      NOT NULL REFERENCES automation.alert_rules (id) ON DELETE CASCADE,
    component         text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('inactive', 'pending', 'firing')),
    active_at         timestamptz,
    fired_at          timestamptz,
    last_true_at      timestamptz,
    keep_firing_since timestamptz,   -- first false evaluation while kept firing (keep_firing_for)
    last_value        double precision,
    last_evaluated_at timestamptz,
    last_notified_at  timestamptz,
    PRIMARY KEY (rule_id, component)
);

CREATE TABLE IF NOT EXISTS automation.alert_suppressions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id      bigint REFERENCES automation.alert_rules (id) ON DELETE CASCADE,  -- NULL: all rules
    starts_at    timestamptz,                 -- one-shot window
    ends_at      timestamptz,
    weekdays     smallint[],                  -- recurring window: ISO weekdays 1 (Mon) .. 7 (Sun)
    start_time   time,
    end_time     time,
    timezone     text NOT NULL DEFAULT 'UTC',
    reason       text NOT NULL,
    created_by   text NOT NULL DEFAULT current_user,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (
        (starts_at IS NOT NULL AND ends_at IS NOT NULL AND ends_at > starts_at AND weekdays IS NULL)
        OR (starts_at IS NULL AND ends_at IS NULL AND weekdays IS NOT NULL
            AND start_time IS NOT NULL AND end_time IS NOT NULL)
    )
);

CREATE TABLE IF NOT EXISTS automation.alert_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id       bigint      REFERENCES automation.alert_rules (id) ON DELETE SET NULL,
    rule_name     text        NOT NULL,
    component     text        NOT NULL,
    severity      text        NOT NULL,
    status        text        NOT NULL DEFAULT 'firing' CHECK (status IN ('firing', 'resolved')),
    value         double precision,
    threshold     double precision,
    message       text,
    fired_at      timestamptz NOT NULL,
    resolved_at   timestamptz,
    resolved_value double precision,
    suppressed    boolean     NOT NULL DEFAULT false,
    suppression_id bigint     REFERENCES automation.alert_suppressions (id) ON DELETE SET NULL,
    notified_at   timestamptz,
    metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS alert_history_open_idx ON automation.alert_history (status, fired_at);

CREATE OR REPLACE VIEW automation.active_alerts AS
SELECT h.id, h.rule_id, h.rule_name, h.component, h.severity, h.value, h.threshold, h.message,
       h.fired_at, now() - h.fired_at AS firing_for, h.suppressed, r.metric_name, r.condition
FROM automation.alert_history h
LEFT JOIN automation.alert_rules r ON r.id = h.rule_id
WHERE h.status = 'firing';
