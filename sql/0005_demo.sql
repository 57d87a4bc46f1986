-- Ground truth of injected demo incidents, so analytics (anomalies, predictions, alerts) can be scored.
CREATE SCHEMA IF NOT EXISTS demo;

CREATE TABLE IF NOT EXISTS demo.incidents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text        NOT NULL
        CHECK (kind IN ('outage', 'latency_spike', 'error_burst', 'degradation', 'bad_deploy')),
    component   text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    description text        NOT NULL
);
