-- Degraded checks per hour and day. A check that answers "degraded" counts as up for uptime, but a rising
-- share of them is an early sign of trouble (an error burst, a struggling dependency), so the AI-ops
-- detector watches it. NULL on rows computed before this migration: re-materialize to fill them.
ALTER TABLE analytics.uptime_hourly
    ADD COLUMN IF NOT EXISTS degraded_checks bigint CHECK (degraded_checks >= 0),
    ADD COLUMN IF NOT EXISTS degraded_ratio double precision CHECK (degraded_ratio BETWEEN 0 AND 1);
ALTER TABLE analytics.uptime_daily
    ADD COLUMN IF NOT EXISTS degraded_checks bigint CHECK (degraded_checks >= 0),
    ADD COLUMN IF NOT EXISTS degraded_ratio double precision CHECK (degraded_ratio BETWEEN 0 AND 1);
