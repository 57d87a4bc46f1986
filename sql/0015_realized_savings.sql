-- Index advice, measured (issue 13): what the catalog held at each profiling run, so a new index (built by
-- auto-remediation or by hand) is noticed and an unused one has an observation period of our own; and for
-- each applied index the realized saving of the queries it serves beside the predicted one.

-- Every index of the application's tables as last seen by a profiling run.
CREATE TABLE IF NOT EXISTS automation.index_catalog (
    schema_name      text        NOT NULL,
    index_name       text        NOT NULL,
    table_name       text        NOT NULL,
    index_oid        bigint      NOT NULL,   -- a dropped and re-created index is a new one
    definition       text        NOT NULL,
    size_bytes       bigint,
    idx_scan         bigint,
    first_seen_at    timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    scans_zero_since timestamptz,            -- idx_scan seen at 0 at every run since; NULL once scanned
    PRIMARY KEY (schema_name, index_name)
);

-- One row per applied index: when (a range when it was found between two runs), by whom, which queries it
-- serves, the saving predicted by the advice, and the one measured from pg_stat_statements windows
-- (automation.query_stats) before and after. status: measuring (too few calls after), no_baseline (too few
-- before), measured, or no_queries (nothing we saw runs through it).
CREATE TABLE IF NOT EXISTS automation.realized_savings (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name            text             NOT NULL,
    index_name             text             NOT NULL,
    index_oid              bigint           NOT NULL,
    table_name             text             NOT NULL,
    definition             text             NOT NULL,
    source                 text             NOT NULL CHECK (source IN ('auto_apply', 'manual')),
    recommendation_key     text,
    applied_after          timestamptz      NOT NULL,  -- the index did not exist before this moment ...
    applied_before         timestamptz      NOT NULL,  -- ... and existed from this one
    fingerprints           text[]           NOT NULL DEFAULT '{}',
    predicted_saved_ms     double precision,
    predicted_saving_pct   double precision,
    calls_before           bigint,
    mean_ms_before         double precision,
    calls_after            bigint,
    mean_ms_after          double precision,
    realized_saved_ms      double precision,
    realized_saving_pct    double precision,
    status                 text             NOT NULL DEFAULT 'measuring'
        CHECK (status IN ('measuring', 'no_baseline', 'measured', 'no_queries')),
    queries                jsonb            NOT NULL DEFAULT '[]'::jsonb,
    detected_at            timestamptz      NOT NULL DEFAULT now(),
    measured_at            timestamptz,
    UNIQUE (schema_name, index_name, index_oid)
);
CREATE INDEX IF NOT EXISTS realized_savings_recommendation_idx ON automation.realized_savings (recommendation_key);
