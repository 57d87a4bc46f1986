-- Alert rules per monitored target (docs/ALERTING_RULES.md "Targets"): the engine evaluates each rule on
-- every target it applies to, so an alert instance is (rule, target, component). Existing state and history
-- are the `default` target's: the constant default fills them without a rewrite.
ALTER TABLE automation.alert_state ADD COLUMN IF NOT EXISTS target text NOT NULL DEFAULT 'default';
ALTER TABLE automation.alert_history ADD COLUMN IF NOT EXISTS target text NOT NULL DEFAULT 'default';

-- Old keys were unique on (rule_id, component), so the wider ones hold on existing rows.
ALTER TABLE automation.alert_state DROP CONSTRAINT IF EXISTS alert_state_pkey,
    ADD PRIMARY KEY (rule_id, target, component);
DROP INDEX IF EXISTS automation.alert_history_open_instance_idx;
CREATE UNIQUE INDEX IF NOT EXISTS alert_history_open_instance_idx
    ON automation.alert_history (rule_id, target, component) WHERE status = 'firing';

-- Views can only gain columns at the end.
CREATE OR REPLACE VIEW automation.active_alerts AS
SELECT h.id, h.rule_id, h.rule_name, h.component, h.severity, h.value, h.threshold, h.message,
       h.fired_at, now() - h.fired_at AS firing_for, h.suppressed, r.metric_name, r.condition, h.target
FROM automation.alert_history h
LEFT JOIN automation.alert_rules r ON r.id = h.rule_id
WHERE h.status = 'firing';
