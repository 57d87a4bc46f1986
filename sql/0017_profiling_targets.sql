-- Profiling per monitored target (docs: README "Many databases"). A target's profiling run works in the
-- target's own database, next to the counters it diffs (its pg_stat_statements snapshot, fingerprints, index
-- catalog, realized savings and remediation audit stay there, as for `default`), and its results are copied
-- here under the target's name. Their keys lead with the target so two databases' rows never collide;
-- existing rows are the `default` target's (migration 0014), so the old keys stay unique under the new ones.
ALTER TABLE automation.query_stats DROP CONSTRAINT IF EXISTS query_stats_pkey,
    ADD PRIMARY KEY (target, source, window_end, fingerprint);
ALTER TABLE automation.slow_queries DROP CONSTRAINT IF EXISTS slow_queries_pkey,
    ADD PRIMARY KEY (target, fingerprint);
ALTER TABLE automation.performance_recommendations
    DROP CONSTRAINT IF EXISTS performance_recommendations_recommendation_key_key,
    ADD CONSTRAINT performance_recommendations_target_key UNIQUE (target, recommendation_key);
CREATE INDEX IF NOT EXISTS table_statistics_target_captured_idx
    ON automation.table_statistics (target, captured_at DESC);
