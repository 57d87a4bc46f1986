-- Derived tables written by the pipeline. Each is keyed by its time bucket so a partition's rows can be
-- replaced in one transaction (delete window, insert) without touching other partitions.
CREATE SCHEMA IF NOT EXISTS analytics;

CREATE TABLE IF NOT EXISTS analytics.quarantine (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_table    text        NOT NULL,
    source_id       bigint,
    event_at        timestamptz,
    partition_start timestamptz NOT NULL,
    reason          text        NOT NULL,
    payload         jsonb       NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quarantine_partition_idx ON analytics.quarantine (source_table, partition_start);

CREATE TABLE IF NOT EXISTS analytics.uptime_hourly (
    bucket_start  timestamptz NOT NULL,
    component     text        NOT NULL,
    checks        bigint      NOT NULL,
    up_checks     bigint      NOT NULL,
    uptime_pct    double precision NOT NULL,
    PRIMARY KEY (bucket_start, component)
);

CREATE TABLE IF NOT EXISTS analytics.uptime_daily (
    bucket_start  timestamptz NOT NULL,
    component     text        NOT NULL,
    checks        bigint      NOT NULL,
    up_checks     bigint      NOT NULL,
    uptime_pct    double precision NOT NULL,
    PRIMARY KEY (bucket_start, component)
);

CREATE TABLE IF NOT EXISTS analytics.error_rates_hourly (
    bucket_start     timestamptz NOT NULL,
    component        text        NOT NULL,
    events           bigint      NOT NULL,
    errors           bigint      NOT NULL,
    error_ratio      double precision NOT NULL,
    errors_per_hour  double precision NOT NULL,
    PRIMARY KEY (bucket_start, component)
);

CREATE TABLE IF NOT EXISTS analytics.response_times_hourly (
    bucket_start  timestamptz NOT NULL,
    component     text        NOT NULL,
    samples       bigint      NOT NULL,
    avg_ms        double precision,
    p50_ms        double precision,
    p95_ms        double precision,
    p99_ms        double precision,
    max_ms        double precision,
    PRIMARY KEY (bucket_start, component)
);

CREATE TABLE IF NOT EXISTS analytics.health_score_hourly (
    bucket_start  timestamptz NOT NULL,
    component     text        NOT NULL,
    uptime_pct    double precision,
    error_ratio   double precision,
    p95_ms        double precision,
    uptime_score  double precision NOT NULL,
    error_score   double precision NOT NULL,
    latency_score double precision NOT NULL,
    health_score  double precision NOT NULL CHECK (health_score BETWEEN 0 AND 100),
    PRIMARY KEY (bucket_start, component)
);

CREATE TABLE IF NOT EXISTS analytics.release_stats_daily (
    bucket_start              timestamptz NOT NULL PRIMARY KEY,
    migrations_total          bigint NOT NULL,
    migrations_failed         bigint NOT NULL,
    migrations_success_rate   double precision,
    rollbacks_total           bigint NOT NULL,
    migration_duration_avg_ms double precision,
    migration_duration_max_ms double precision,
    deployments_total         bigint NOT NULL,
    deployments_failed        bigint NOT NULL,
    deployment_success_rate   double precision,
    deployment_rollbacks      bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS analytics.metric_samples_hourly (
    bucket_start  timestamptz NOT NULL,
    component     text        NOT NULL,
    metric_name   text        NOT NULL,
    samples       bigint      NOT NULL,
    avg_value     double precision,
    max_value     double precision,
    last_value    double precision,
    PRIMARY KEY (bucket_start, component, metric_name)
);
