-- Monitored targets (docs: README "Many databases"). One deployment can watch many databases; the database
-- configured for Autopilot itself stays the target `default`, so an existing setup keeps working unchanged.
-- A target's URL is never stored: only the environment variable or the secrets file that holds it.
CREATE TABLE IF NOT EXISTS automation.targets (
    name        text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    url_env     text        CHECK (url_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    url_file    text,
    added_at    timestamptz NOT NULL DEFAULT now(),
    -- `default` reads the pipeline's own database; every other target names exactly one place for its URL
    CONSTRAINT targets_one_url_source CHECK (
        (name = 'default' AND url_env IS NULL AND url_file IS NULL) OR num_nonnulls(url_env, url_file) = 1
    )
);
INSERT INTO automation.targets (name) VALUES ('default') ON CONFLICT (name) DO NOTHING;

-- Rows that come from a monitored database say which one. Existing rows are the `default` target's: the
-- column's default fills them without a rewrite (a constant default is metadata-only since Postgres 11).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'analytics.quarantine', 'analytics.uptime_hourly', 'analytics.uptime_daily',
        'analytics.error_rates_hourly', 'analytics.response_times_hourly', 'analytics.health_score_hourly',
        'analytics.release_stats_daily', 'analytics.metric_samples_hourly',
        'analytics.anomalies', 'analytics.trends', 'analytics.failure_predictions', 'analytics.insights',
        'automation.query_stats', 'automation.slow_queries', 'automation.table_statistics',
        'automation.performance_recommendations'
    ] LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS target text NOT NULL DEFAULT ''default''', t);
    END LOOP;
END
$$;

-- The health tables are written per target and time window: their keys lead with the target, so each
-- target's partition is replaced alone (old keys were unique, so the new ones are too).
ALTER TABLE analytics.uptime_hourly DROP CONSTRAINT uptime_hourly_pkey,
    ADD PRIMARY KEY (target, bucket_start, component);
ALTER TABLE analytics.uptime_daily DROP CONSTRAINT uptime_daily_pkey,
    ADD PRIMARY KEY (target, bucket_start, component);
ALTER TABLE analytics.error_rates_hourly DROP CONSTRAINT error_rates_hourly_pkey,
    ADD PRIMARY KEY (target, bucket_start, component);
ALTER TABLE analytics.response_times_hourly DROP CONSTRAINT response_times_hourly_pkey,
    ADD PRIMARY KEY (target, bucket_start, component);
ALTER TABLE analytics.health_score_hourly DROP CONSTRAINT health_score_hourly_pkey,
    ADD PRIMARY KEY (target, bucket_start, component);
ALTER TABLE analytics.metric_samples_hourly DROP CONSTRAINT metric_samples_hourly_pkey,
    ADD PRIMARY KEY (target, bucket_start, component, metric_name);
ALTER TABLE analytics.release_stats_daily DROP CONSTRAINT release_stats_daily_pkey,
    ADD PRIMARY KEY (target, bucket_start);
-- AI ops analyse each target on its own (target × hour partitions), so their keys lead with it too.
ALTER TABLE analytics.anomalies DROP CONSTRAINT anomalies_pkey,
    ADD PRIMARY KEY (target, bucket_start, component, metric);
ALTER TABLE analytics.trends DROP CONSTRAINT trends_pkey,
    ADD PRIMARY KEY (target, analyzed_at, window_hours, component, metric);
ALTER TABLE analytics.failure_predictions DROP CONSTRAINT failure_predictions_pkey,
    ADD PRIMARY KEY (target, predicted_at, component, metric);
ALTER TABLE analytics.insights DROP CONSTRAINT insights_pkey,
    ADD PRIMARY KEY (target, generated_at);

-- Source ids are per database: two targets' health_log can both hold id 42.
DROP INDEX IF EXISTS analytics.quarantine_source_row_key;
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_source_row_key
    ON analytics.quarantine (target, source_table, source_id);
DROP INDEX IF EXISTS analytics.quarantine_partition_idx;
CREATE INDEX IF NOT EXISTS quarantine_partition_idx ON analytics.quarantine (target, source_table, partition_start);

-- An alert rule names one target or (NULL) applies to every target.
ALTER TABLE automation.alert_rules ADD COLUMN IF NOT EXISTS target text;
