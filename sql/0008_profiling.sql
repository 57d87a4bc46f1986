-- Performance profiling, second part: parser fingerprints, pg_stat_statements snapshots, per-window query
-- statistics, the current slow-query analysis, and the audit trail of automatic remediation.

-- pg_stat_statements and HypoPG when this server has them. Each is optional: without pg_stat_statements
-- profiling reads only automation.query_performance; without HypoPG index advice is a labelled heuristic.
-- A missing package or privilege is a NOTICE, never a failed migration.
DO $$
DECLARE
    ext text;
BEGIN
    FOREACH ext IN ARRAY ARRAY['pg_stat_statements', 'hypopg'] LOOP
        IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = ext)
           AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = ext) THEN
            BEGIN
                EXECUTE format('CREATE EXTENSION IF NOT EXISTS %I', ext);
            EXCEPTION WHEN OTHERS THEN  -- optional: never fail the migration over it
                RAISE NOTICE 'autopilot: extension % not created: %', ext, SQLERRM;
            END;
        END IF;
    END LOOP;
END
$$;

-- Every fingerprint ever seen (from either source): "new" means first seen in the current window.
CREATE TABLE IF NOT EXISTS automation.query_fingerprints (
    fingerprint      text        PRIMARY KEY,
    normalized_query text        NOT NULL,
    statement_type   text        NOT NULL,
    tables           text        NOT NULL DEFAULT '',
    example_query    text,
    first_seen_at    timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL
);

-- Per-fingerprint statistics of one window, per source: 'app_log' (query_performance, [now - lookback, now))
-- or 'pg_stat_statements' (the difference between two snapshots of its cumulative counters).
CREATE TABLE IF NOT EXISTS automation.query_stats (
    window_start     timestamptz,            -- NULL: pg_stat_statements' first snapshot (since its last reset)
    window_end       timestamptz      NOT NULL,
    source           text             NOT NULL CHECK (source IN ('app_log', 'pg_stat_statements')),
    fingerprint      text             NOT NULL,
    calls            bigint           NOT NULL,
    total_ms         double precision NOT NULL,
    mean_ms          double precision NOT NULL,
    p95_ms           double precision,        -- app_log only: pg_stat_statements keeps no percentiles
    max_ms           double precision,
    rows             bigint,
    is_slow          boolean          NOT NULL,
    is_new           boolean          NOT NULL,
    first_seen_at    timestamptz,
    statement_type   text,
    tables           text,
    normalized_query text,
    example_query    text,
    PRIMARY KEY (source, window_end, fingerprint)
);
CREATE INDEX IF NOT EXISTS query_stats_fingerprint_idx ON automation.query_stats (fingerprint, window_end);

-- The latest pg_stat_statements snapshot of this database (counters only); the next run diffs against it.
CREATE TABLE IF NOT EXISTS automation.pg_stat_statements_snapshots (
    captured_at      timestamptz      NOT NULL,
    stats_reset      timestamptz,
    userid           bigint           NOT NULL,
    dbid             bigint           NOT NULL,
    queryid          bigint           NOT NULL,
    toplevel         boolean          NOT NULL,
    calls            bigint           NOT NULL,
    total_exec_ms    double precision NOT NULL,
    total_plan_ms    double precision,
    rows             bigint           NOT NULL,
    shared_blks_hit  bigint,
    shared_blks_read bigint,
    blk_read_ms      double precision,
    stats_since      timestamptz,
    PRIMARY KEY (userid, dbid, queryid, toplevel)
);

-- The current slow-query analysis (replaced by each run): workload, plan cost, and the planner's verdict
-- on the best index (HypoPG) or a labelled heuristic.
CREATE TABLE IF NOT EXISTS automation.slow_queries (
    fingerprint       text             PRIMARY KEY,
    analyzed_at       timestamptz      NOT NULL,
    source            text             NOT NULL,
    calls             bigint           NOT NULL,
    total_ms          double precision NOT NULL,
    mean_ms           double precision NOT NULL,
    p95_ms            double precision,
    is_slow           boolean          NOT NULL,
    is_new            boolean          NOT NULL,
    statement_type    text,
    tables            text,
    normalized_query  text,
    example_query     text,
    plan_cost         double precision,
    seq_scan_tables   text,
    index_key         text,              -- recommended index (performance_recommendations.recommendation_key)
    index_cost        double precision,
    saving_pct        double precision,
    verification      text             NOT NULL CHECK (verification IN ('hypopg', 'heuristic', 'none')),
    analysis          text
);

-- Recommendation life cycle: last seen by a run; resolved (implemented, auto_applied, already_present).
ALTER TABLE automation.performance_recommendations
    ADD COLUMN IF NOT EXISTS last_seen_at timestamptz,
    ADD COLUMN IF NOT EXISTS resolution   text;

-- Who did what, when, with which result: every automatic remediation, dry runs included.
CREATE TABLE IF NOT EXISTS automation.remediation_audit (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recommendation_id  bigint,
    recommendation_key text        NOT NULL,
    action_sql         text        NOT NULL,
    mode               text        NOT NULL CHECK (mode IN ('dry_run', 'apply')),
    actor              text        NOT NULL,
    db_user            text        NOT NULL DEFAULT session_user,
    started_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at        timestamptz,
    result             text        NOT NULL DEFAULT 'running'
        CHECK (result IN ('running', 'dry_run', 'applied', 'failed', 'skipped')),
    error              text,
    details            jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS remediation_audit_key_idx ON automation.remediation_audit (recommendation_key, started_at);

-- More of pg_stat_user_tables/pg_class in each table snapshot: what the autovacuum formulas and the
-- wraparound check use, and write activity.
ALTER TABLE automation.table_statistics
    ADD COLUMN IF NOT EXISTS reltuples          double precision,
    ADD COLUMN IF NOT EXISTS n_ins_since_vacuum bigint,
    ADD COLUMN IF NOT EXISTS n_tup_ins          bigint,
    ADD COLUMN IF NOT EXISTS n_tup_upd          bigint,
    ADD COLUMN IF NOT EXISTS n_tup_del          bigint,
    ADD COLUMN IF NOT EXISTS vacuum_count       bigint,
    ADD COLUMN IF NOT EXISTS autovacuum_count   bigint,
    ADD COLUMN IF NOT EXISTS analyze_count      bigint,
    ADD COLUMN IF NOT EXISTS autoanalyze_count  bigint,
    ADD COLUMN IF NOT EXISTS xid_age            bigint;

-- Open advice, best first: what the seed's "Get Recommendations" query means.
CREATE OR REPLACE VIEW automation.open_recommendations AS
SELECT r.*
FROM automation.performance_recommendations r
WHERE NOT r.implemented
ORDER BY CASE r.priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
         r.estimated_improvement_pct DESC NULLS LAST, r.recommendation_key;
