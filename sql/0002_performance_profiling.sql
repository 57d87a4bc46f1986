-- Performance profiling (seed Phase 5 section 3): app-logged query timings, table health snapshots
-- and optimization recommendations.
CREATE TABLE IF NOT EXISTS automation.query_performance (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    query              text             NOT NULL,
    execution_time_ms  double precision NOT NULL,
    rows_returned      bigint,
    source             text             NOT NULL DEFAULT 'api',
    logged_at          timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS query_performance_logged_at_idx ON automation.query_performance (logged_at);

-- The seed's SQL API: SELECT automation.log_query_performance('SELECT ...', 1250, 100, 'api');
CREATE OR REPLACE FUNCTION automation.log_query_performance(
    p_query text,
    p_execution_time_ms double precision,
    p_rows_returned bigint DEFAULT NULL,
    p_source text DEFAULT 'api'
) RETURNS bigint
LANGUAGE sql
AS $$
    INSERT INTO automation.query_performance (query, execution_time_ms, rows_returned, source)
    VALUES (p_query, p_execution_time_ms, p_rows_returned, coalesce(p_source, 'api'))
    RETURNING id;
$$;

CREATE TABLE IF NOT EXISTS automation.table_statistics (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    captured_at         timestamptz NOT NULL DEFAULT now(),
    schema_name         text        NOT NULL,
    table_name          text        NOT NULL,
    seq_scan            bigint,
    seq_tup_read        bigint,
    idx_scan            bigint,
    idx_tup_fetch       bigint,
    n_live_tup          bigint,
    n_dead_tup          bigint,
    n_mod_since_analyze bigint,
    last_vacuum         timestamptz,
    last_autovacuum     timestamptz,
    last_analyze        timestamptz,
    last_autoanalyze    timestamptz,
    heap_blks_read      bigint,
    heap_blks_hit       bigint,
    idx_blks_read       bigint,
    idx_blks_hit        bigint,
    table_bytes         bigint,
    index_bytes         bigint,
    total_bytes         bigint
);
CREATE INDEX IF NOT EXISTS table_statistics_captured_idx
    ON automation.table_statistics (schema_name, table_name, captured_at DESC);

CREATE TABLE IF NOT EXISTS automation.performance_recommendations (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recommendation_key        text        NOT NULL UNIQUE,  -- stable: reruns update, never duplicate
    recommendation_type       text        NOT NULL
        CHECK (recommendation_type IN ('missing_index', 'unused_index', 'duplicate_index', 'vacuum',
                                       'analyze', 'wraparound', 'cache', 'connections', 'query_optimization')),
    priority                  text        NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
    table_name                text,
    description               text        NOT NULL,
    action_sql                text,
    impact                    text,
    estimated_improvement_pct double precision,
    implemented               boolean     NOT NULL DEFAULT false,
    implemented_at            timestamptz,
    metadata                  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Slow queries grouped by text with literals blanked (the profiling assets add parser-based fingerprints).
CREATE OR REPLACE VIEW automation.slow_queries_summary AS
SELECT
    md5(regexp_replace(regexp_replace(q.query, '''[^'']*''', '?', 'g'), '\m\d+(\.\d+)?\M', '?', 'g')) AS query_hash,
    min(q.query)                                                        AS example_query,
    count(*)                                                            AS calls,
    round(avg(q.execution_time_ms)::numeric, 2)                         AS avg_time_ms,
    round(max(q.execution_time_ms)::numeric, 2)                         AS max_time_ms,
    round((percentile_cont(0.95) WITHIN GROUP (ORDER BY q.execution_time_ms))::numeric, 2) AS p95_time_ms,
    round(sum(q.execution_time_ms)::numeric, 2)                         AS total_time_ms,
    sum(q.rows_returned)                                                AS total_rows,
    max(q.logged_at)                                                    AS last_seen
FROM automation.query_performance q
WHERE q.execution_time_ms >= 1000
GROUP BY 1;

-- Latest snapshot per table, with the ratios people look at first.
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
ORDER BY s.schema_name, s.table_name, s.captured_at DESC;
