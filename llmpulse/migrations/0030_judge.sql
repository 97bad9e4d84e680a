-- LLM-judge results, human review labels and judge runs (issue 7).

-- One row per judgment attempt of one event by one rubric: scored, parse_failure (the judge answered but not
-- in the required format, even after one fix-up request) or error (no answer: timeout, HTTP error...).
-- Append-only, so hourly/daily caps can count what was spent; the current score of an event is its latest
-- 'scored' row. Event attributes are copied so quality analysis never joins the events table.
CREATE TABLE IF NOT EXISTS judgments
(
    judgment_id     String,
    run_id          String,
    event_id        String,
    event_time      DateTime64(3, 'UTC'),
    trace_id        String,
    app             LowCardinality(String),
    environment     LowCardinality(String),
    feature         LowCardinality(String),
    provider        LowCardinality(String),
    model           LowCardinality(String),
    prompt_version  LowCardinality(String),
    rule            LowCardinality(String),
    rubric          LowCardinality(String),
    rubric_version  UInt32,
    score_type      LowCardinality(String),
    judge_model     LowCardinality(String),
    judge_provider  LowCardinality(String),
    status          LowCardinality(String),
    score           Nullable(Float64),
    label           LowCardinality(String),
    reason          String,
    error_kind      LowCardinality(String),
    error           String,
    attempts        UInt16,
    calls           UInt8,
    input_tokens    UInt32,
    output_tokens   UInt32,
    latency_ms      Float64,
    cost_usd        Nullable(Float64),
    judged_at       DateTime64(3, 'UTC'),
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_judged_at judged_at TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (rubric, app, event_time, event_id);

-- Human labels from `llmpulse review import`; re-importing the same reviewer's label replaces it.
CREATE TABLE IF NOT EXISTS review_labels
(
    event_id        String,
    rubric          LowCardinality(String),
    reviewer        String,
    score           Nullable(Float64),
    label           LowCardinality(String),
    is_failure      Bool,
    notes           String,
    event_time      Nullable(DateTime64(3, 'UTC')),
    app             LowCardinality(String),
    feature         LowCardinality(String),
    model           LowCardinality(String),
    prompt_version  LowCardinality(String),
    input_text      String CODEC(ZSTD(3)),
    output_text     String CODEC(ZSTD(3)),
    source_file     String,
    labeled_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(labeled_at)
ORDER BY (rubric, event_id, reviewer);

-- One row per judge run: what it looked at, what it did, what it spent and why it stopped.
CREATE TABLE IF NOT EXISTS judge_runs
(
    run_id           String,
    started_at       DateTime64(3, 'UTC'),
    finished_at      DateTime64(3, 'UTC'),
    window_start     DateTime64(3, 'UTC'),
    window_end       DateTime64(3, 'UTC'),
    trigger          LowCardinality(String),
    judge_model      LowCardinality(String),
    candidates       UInt32,
    no_output        UInt32,
    judged           UInt32,
    scored           UInt32,
    parse_failures   UInt32,
    errors           UInt32,
    skipped_budget   UInt32,
    skipped_breaker  UInt32,
    skipped_deadline UInt32,
    spend_usd        Float64,
    breaker_state    LowCardinality(String),
    breaker_opened   UInt32,
    per_rule         String,
    message          String
)
ENGINE = MergeTree
ORDER BY started_at;
