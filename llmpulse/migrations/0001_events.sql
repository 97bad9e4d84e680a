-- Trace events, one row per LLM call / tool / agent step.
-- ReplacingMergeTree keyed on event_id is the second line of duplicate defence: the writer already
-- drops event_ids that are stored, and merges collapse any that slip past it (e.g. two collector
-- processes racing on the same re-sent event). Queries over raw rows that must be exact use FINAL.
CREATE TABLE IF NOT EXISTS events
(
    event_id                    String,
    schema_version              UInt8 DEFAULT 1,
    app                         LowCardinality(String),
    environment                 LowCardinality(String),
    feature                     LowCardinality(String),
    operation                   LowCardinality(String),
    provider                    LowCardinality(String),
    model                       LowCardinality(String),
    response_model              LowCardinality(String),
    prompt_id                   LowCardinality(String),
    prompt_version              LowCardinality(String),
    trace_id                    String,
    span_id                     String,
    parent_span_id              String,
    user_id                     String,
    session_id                  String,
    start_time                  DateTime64(3, 'UTC'),
    end_time                    DateTime64(3, 'UTC'),
    latency_ms                  Float64,
    ttft_ms                     Nullable(Float64),
    status                      LowCardinality(String),
    error_type                  LowCardinality(String),
    finish_reason               LowCardinality(String),
    input_tokens                UInt32,
    output_tokens               UInt32,
    cache_read_input_tokens     UInt32,
    cache_creation_input_tokens UInt32,
    reasoning_output_tokens     UInt32,
    cost_input_usd              Nullable(Float64),
    cost_cache_read_usd         Nullable(Float64),
    cost_cache_write_usd        Nullable(Float64),
    cost_output_usd             Nullable(Float64),
    cost_reasoning_usd          Nullable(Float64),
    cost_usd                    Nullable(Float64),
    price_source                LowCardinality(String),
    input_text                  String CODEC(ZSTD(3)),
    output_text                 String CODEC(ZSTD(3)),
    input_messages              String CODEC(ZSTD(3)),
    output_messages             String CODEC(ZSTD(3)),
    input_truncated             Bool,
    output_truncated            Bool,
    metadata                    Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    tags                        Array(LowCardinality(String)),
    source                      LowCardinality(String),
    ingested_at                 DateTime64(3, 'UTC'),
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toDate(start_time)
ORDER BY (app, environment, toStartOfHour(start_time), event_id)
TTL toDateTime(start_time) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192;
