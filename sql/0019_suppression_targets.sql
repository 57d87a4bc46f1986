-- A maintenance window can be limited to one monitored target (NULL: every target, as before): upgrading
-- shop_eu's database should not mute the alerts of the others. Removing a target removes its windows.
ALTER TABLE automation.alert_suppressions
    ADD COLUMN IF NOT EXISTS target text REFERENCES automation.targets (name) ON DELETE CASCADE;
