-- Drift references: a pinned period per group (app, environment, feature[, model, prompt_version]; '' = any),
-- with the numeric bin edges computed once from it. Unpinning writes a newer row with pinned = 0.
CREATE TABLE IF NOT EXISTS drift_references
(
    app            LowCardinality(String),
    environment    LowCardinality(String),
    feature        String,
    model          String,
    prompt_version String,
    pinned         Bool,
    ref_start      DateTime64(3, 'UTC'),
    ref_end        DateTime64(3, 'UTC'),
    note           String,
    events         UInt64,
    edges          Map(String, Array(Float64)),
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (app, environment, feature, model, prompt_version);

-- One row per test per group per drift run (and one '__verdict__' row per group and direction), for
-- dashboards and for the 2-of-3-runs persistence rule. A re-run at the same instant (backtest replay)
-- replaces its rows.
CREATE TABLE IF NOT EXISTS drift_results
(
    at             DateTime64(3, 'UTC'),
    app            LowCardinality(String),
    environment    LowCardinality(String),
    feature        String,
    model          String,
    prompt_version String,
    direction      LowCardinality(String),
    drift_feature  LowCardinality(String),
    kind           LowCardinality(String),
    method         LowCardinality(String),
    status         LowCardinality(String),
    statistic      Float64,
    p_value        Float64,
    p_adjusted     Float64,
    effect_name    LowCardinality(String),
    effect         Float64,
    threshold      Float64,
    floor          Float64,
    null_threshold Float64,
    n_reference    UInt64,
    n_current      UInt64,
    significant    Bool,
    drifted        Bool,
    reference_kind LowCardinality(String),
    ref_start      DateTime64(3, 'UTC'),
    ref_end        DateTime64(3, 'UTC'),
    cur_start      DateTime64(3, 'UTC'),
    cur_end        DateTime64(3, 'UTC'),
    details        String CODEC(ZSTD(3)),
    written_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(at)
ORDER BY (app, environment, feature, model, prompt_version, direction, drift_feature, kind, at)
TTL toDateTime(at) + INTERVAL 180 DAY;
