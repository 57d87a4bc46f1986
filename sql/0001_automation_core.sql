-- Core monitoring data written by the monitored application (the seed's `automation` schema).
-- Columns are deliberately permissive (no CHECK on status or response time): the pipeline, not the
-- writer, decides what is valid, counts bad rows and quarantines them with a reason.
CREATE SCHEMA IF NOT EXISTS automation;

CREATE TABLE IF NOT EXISTS automation.health_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checked_at       timestamptz NOT NULL,
    source           text        NOT NULL,             -- component name, or 'ai-ops' for findings
    kind             text        NOT NULL DEFAULT 'health_check',
    status           text,
    response_time_ms double precision,
    message          text,
    metadata         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    inserted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS health_log_checked_at_idx ON automation.health_log (checked_at);
CREATE INDEX IF NOT EXISTS health_log_source_kind_idx ON automation.health_log (source, kind, checked_at);

CREATE TABLE IF NOT EXISTS automation.metric_samples (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sampled_at   timestamptz NOT NULL,
    source       text        NOT NULL,
    metric_name  text        NOT NULL,
    value        double precision,
    labels       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    inserted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS metric_samples_sampled_at_idx ON automation.metric_samples (sampled_at);
CREATE INDEX IF NOT EXISTS metric_samples_name_idx ON automation.metric_samples (metric_name, sampled_at);

CREATE TABLE IF NOT EXISTS automation.migration_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version      text        NOT NULL,
    name         text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    duration_ms  double precision,
    status       text        NOT NULL,                 -- success | failed | rolled_back
    rolled_back  boolean     NOT NULL DEFAULT false,
    error        text,
    metadata     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS migration_log_started_at_idx ON automation.migration_log (started_at);

CREATE TABLE IF NOT EXISTS automation.deployment_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text        NOT NULL,                 -- component deployed
    version      text        NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    duration_ms  double precision,
    status       text        NOT NULL,                 -- success | failed | rolled_back
    rolled_back  boolean     NOT NULL DEFAULT false,
    metadata     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS deployment_log_started_at_idx ON automation.deployment_log (started_at);
