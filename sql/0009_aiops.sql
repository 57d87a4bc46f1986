-- AI operations (docs/AI_OPS_GUIDE.md): anomaly scores, trends, failure predictions, insights and the LLM
-- response cache. Written by the `aiops` assets (and `autopilot analyze --save`); every write replaces one
-- window or one analysis time in a single transaction, so re-running is idempotent.

-- Every scored point of the scored window (not only anomalies: the score is continuous and the plots and
-- dashboards read it). `is_anomaly` is the final decision; anomalies are also written to
-- automation.health_log (source 'ai-ops', kind 'anomaly') for the seed's "intelligent alerting" SQL.
CREATE TABLE IF NOT EXISTS analytics.anomalies (
    bucket_start    timestamptz      NOT NULL,          -- the hourly bucket scored
    component       text             NOT NULL,
    metric          text             NOT NULL,          -- uptime_pct, error_ratio, p95_ms, avg_ms, custom names
    is_anomaly      boolean          NOT NULL,
    anomaly_score   double precision NOT NULL CHECK (anomaly_score BETWEEN 0 AND 1),
    confidence      double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    severity        text             NOT NULL CHECK (severity IN ('none', 'low', 'medium', 'high', 'critical')),
    reason          text             NOT NULL,
    expected_value  double precision,
    actual_value    double precision,
    robust_z        double precision,
    method          text             NOT NULL,          -- robust_z | error_ratio
    p_value         double precision,                   -- error_ratio: binomial significance of the excess
    scored_at       timestamptz      NOT NULL,          -- the analysis time (as_of) of the run that scored it
    PRIMARY KEY (bucket_start, component, metric)
);
CREATE INDEX IF NOT EXISTS anomalies_found_idx ON analytics.anomalies (bucket_start) WHERE is_anomaly;

-- One row per (analysis time, window, component, metric). The seed's shape is trend, slope, confidence and
-- data_points; the rest are the statistics behind the verdict.
CREATE TABLE IF NOT EXISTS analytics.trends (
    analyzed_at      timestamptz      NOT NULL,
    window_hours     integer          NOT NULL CHECK (window_hours > 0),
    component        text             NOT NULL,
    metric           text             NOT NULL,
    trend            text             NOT NULL CHECK (trend IN ('improving', 'stable', 'degrading')),
    slope            double precision,                  -- per hour (OLS)
    slope_per_day    double precision,
    slope_ci_low     double precision,                  -- 95 % interval of the hourly slope
    slope_ci_high    double precision,
    p_value          double precision,
    r_squared        double precision,
    confidence       double precision,
    data_points      integer          NOT NULL,
    mann_kendall_p   double precision,
    mann_kendall_tau double precision,
    theil_sen_slope  double precision,
    window_start     timestamptz,
    window_end       timestamptz,
    PRIMARY KEY (analyzed_at, window_hours, component, metric)
);

-- The first four columns are what the alert engine and the Pushgateway push read (docs/ALERTING_RULES.md);
-- `probability` is the share of simulated forecast paths that cross the threshold within the horizon, an
-- uncalibrated risk score until a backtest on your history says otherwise (docs/AI_OPS_GUIDE.md).
CREATE TABLE IF NOT EXISTS analytics.failure_predictions (
    predicted_at         timestamptz      NOT NULL,     -- forecast origin: the end of the data used
    component            text             NOT NULL,
    metric               text             NOT NULL,
    probability          double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    prediction           text             NOT NULL DEFAULT '',
    timeframe            text             NOT NULL DEFAULT '24 hours',
    horizon_hours        integer          NOT NULL DEFAULT 24,
    threshold            double precision,
    direction            text CHECK (direction IN ('above', 'below')),
    method               text,
    last_value           double precision,
    expected_crossing_at timestamptz,
    history_points       integer,
    recommendations      jsonb            NOT NULL DEFAULT '[]'::jsonb,
    forecast             jsonb            NOT NULL DEFAULT '[]'::jsonb,  -- hourly mean and 80 %/95 % bands
    PRIMARY KEY (predicted_at, component, metric)
);
CREATE INDEX IF NOT EXISTS failure_predictions_risk_idx ON analytics.failure_predictions (predicted_at, probability);

-- One row per analysis time: the seed's generate_insights JSON, and what the optional LLM narrative cost.
CREATE TABLE IF NOT EXISTS analytics.insights (
    generated_at      timestamptz NOT NULL PRIMARY KEY,  -- the analysis time (as_of)
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    health            text        NOT NULL CHECK (health IN ('good', 'warning', 'critical')),
    summary           text        NOT NULL,
    insights          jsonb       NOT NULL,              -- summary, health, migrations, recommendations, aiAnalysis
    facts             jsonb       NOT NULL,              -- the aggregates the insights (and any prompt) came from
    ai_status         text        NOT NULL CHECK (ai_status IN ('disabled', 'ok', 'cached', 'failed')),
    ai_error          text,
    model             text,
    input_hash        text,
    prompt_tokens     integer,
    completion_tokens integer,
    total_tokens      integer,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- LLM answers by input hash (model + prompt): the same facts are never paid for twice.
CREATE TABLE IF NOT EXISTS analytics.llm_cache (
    input_hash        text        PRIMARY KEY,
    model             text        NOT NULL,
    response          text        NOT NULL,
    prompt_tokens     integer,
    completion_tokens integer,
    total_tokens      integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    hits              integer     NOT NULL DEFAULT 0,
    last_hit_at       timestamptz
);
