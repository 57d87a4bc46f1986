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

-- The seed's views describe this database: its own rows (another target's copies carry that target's name).
CREATE OR REPLACE VIEW automation.table_health AS
SELECT DISTINCT ON (s.schema_name, s.table_name)
    s.schema_name,
    s.table_name,
    s.captured_at,
    s.n_live_tup,
    s.n_dead_tup,
    round(100.0 * s.n_dead_tup / nullif(s.n_live_tup + s.n_dead_tup, 0), 2)          AS dead_tuple_pct,
    s.seq_scan,
    s.idx_scan,
    round(100.0 * s.seq_scan / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0), 2)   AS seq_scan_pct,
    round(100.0 * s.heap_blks_hit / nullif(s.heap_blks_hit + s.heap_blks_read, 0), 2) AS cache_hit_pct,
    greatest(s.last_vacuum, s.last_autovacuum)                                       AS last_vacuumed,
    greatest(s.last_analyze, s.last_autoanalyze)                                     AS last_analyzed,
    s.total_bytes,
    pg_size_pretty(s.total_bytes)                                                    AS total_size
FROM automation.table_statistics s
WHERE s.target = 'default'
ORDER BY s.schema_name, s.table_name, s.captured_at DESC;
CREATE OR REPLACE VIEW automation.open_recommendations AS
SELECT r.*
FROM automation.performance_recommendations r
WHERE r.target = 'default' AND NOT r.implemented
ORDER BY CASE r.priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
         r.estimated_improvement_pct DESC NULLS LAST, r.recommendation_key;
