-- Per-minute rollup of LLM traffic per (app, environment, provider, model, feature, prompt_version, operation),
-- maintained by ClickHouse itself: the materialized view aggregates every insert into `events` as it lands.
-- Additive measures are SimpleAggregateFunction(sum/sumMap) (sums of counts and money are exact when
-- re-aggregated); latency and TTFT keep t-digest quantile states (never averaged percentiles) for
-- dashboards, and log-binned histograms (bin b >= 1 holds [10 * 1.26^(b-1), 10 * 1.26^b) ms, bin 0 below
-- 10 ms, bin 47 the rest) that the analyzers use as binned samples for rank tests and SLO ratios.
-- Latency and TTFT measures cover successful calls only: a failed call's latency describes the failure.
-- Events stored before this migration: the view only sees new inserts, so the existing rows are folded in
-- once. The cutoff (the newest ingested_at) is taken before the view exists and recorded, so a re-run neither
-- counts a row twice nor moves the cutoff. Migrations run at start-up before ingest starts; rows written by
-- another process while this migration runs could be missed (see docs/analyzers.md).
CREATE TABLE IF NOT EXISTS rollup_backfills
(
    name       String,
    cutoff     DateTime64(3, 'UTC'),
    done       UInt8,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(done)
ORDER BY name;

INSERT INTO rollup_backfills (name, cutoff, done)
SELECT 'events_1m', (SELECT max(ingested_at) FROM events), 0
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'events_1m') = 0;

CREATE TABLE IF NOT EXISTS events_1m
(
    minute                    DateTime('UTC'),
    app                       LowCardinality(String),
    environment               LowCardinality(String),
    provider                  LowCardinality(String),
    model                     LowCardinality(String),
    feature                   LowCardinality(String),
    prompt_version            LowCardinality(String),
    operation                 LowCardinality(String),
    requests                  SimpleAggregateFunction(sum, UInt64),
    errors                    SimpleAggregateFunction(sum, UInt64),
    errors_by_type            SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    input_tokens_sum          SimpleAggregateFunction(sum, UInt64),
    output_tokens_sum         SimpleAggregateFunction(sum, UInt64),
    cache_read_tokens_sum     SimpleAggregateFunction(sum, UInt64),
    cache_creation_tokens_sum SimpleAggregateFunction(sum, UInt64),
    reasoning_tokens_sum      SimpleAggregateFunction(sum, UInt64),
    cost_usd_sum              SimpleAggregateFunction(sum, Float64),
    priced_requests           SimpleAggregateFunction(sum, UInt64),
    ok_requests               SimpleAggregateFunction(sum, UInt64),
    latency_ok_ms_sum         SimpleAggregateFunction(sum, Float64),
    latency_hist              SimpleAggregateFunction(sumMap, Map(UInt8, UInt64)),
    ttft_hist                 SimpleAggregateFunction(sumMap, Map(UInt8, UInt64)),
    latency_q                 AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64),
    ttft_q                    AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, app, environment, provider, model, feature, prompt_version, operation)
TTL minute + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_1m_mv TO events_1m AS
SELECT
    toStartOfMinute(start_time) AS minute,
    app, environment, provider, model, feature, prompt_version, operation,
    count() AS requests,
    countIf(status = 'error') AS errors,
    sumMapIf(map(if(error_type = '', 'unknown', toString(error_type)), toUInt64(1)), status = 'error') AS errors_by_type,
    sum(toUInt64(input_tokens)) AS input_tokens_sum,
    sum(toUInt64(output_tokens)) AS output_tokens_sum,
    sum(toUInt64(cache_read_input_tokens)) AS cache_read_tokens_sum,
    sum(toUInt64(cache_creation_input_tokens)) AS cache_creation_tokens_sum,
    sum(toUInt64(reasoning_output_tokens)) AS reasoning_tokens_sum,
    sum(ifNull(cost_usd, 0)) AS cost_usd_sum,
    count(cost_usd) AS priced_requests,
    countIf(status = 'ok') AS ok_requests,
    sumIf(latency_ms, status = 'ok') AS latency_ok_ms_sum,
    sumMapIf(map(toUInt8(least(greatest(floor(log(greatest(latency_ms, 0.001) / 10) / log(1.26)) + 1, 0), 47)), toUInt64(1)),
             status = 'ok') AS latency_hist,
    sumMapIf(map(toUInt8(least(greatest(floor(log(greatest(ifNull(ttft_ms, 0), 0.001) / 10) / log(1.26)) + 1, 0), 47)), toUInt64(1)),
             status = 'ok' AND ttft_ms IS NOT NULL) AS ttft_hist,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(latency_ms, status = 'ok') AS latency_q,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(ifNull(ttft_ms, 0), status = 'ok' AND ttft_ms IS NOT NULL) AS ttft_q
FROM events
GROUP BY minute, app, environment, provider, model, feature, prompt_version, operation;

INSERT INTO events_1m
SELECT
    toStartOfMinute(start_time) AS minute,
    app, environment, provider, model, feature, prompt_version, operation,
    count() AS requests,
    countIf(status = 'error') AS errors,
    sumMapIf(map(if(error_type = '', 'unknown', toString(error_type)), toUInt64(1)), status = 'error') AS errors_by_type,
    sum(toUInt64(input_tokens)) AS input_tokens_sum,
    sum(toUInt64(output_tokens)) AS output_tokens_sum,
    sum(toUInt64(cache_read_input_tokens)) AS cache_read_tokens_sum,
    sum(toUInt64(cache_creation_input_tokens)) AS cache_creation_tokens_sum,
    sum(toUInt64(reasoning_output_tokens)) AS reasoning_tokens_sum,
    sum(ifNull(cost_usd, 0)) AS cost_usd_sum,
    count(cost_usd) AS priced_requests,
    countIf(status = 'ok') AS ok_requests,
    sumIf(latency_ms, status = 'ok') AS latency_ok_ms_sum,
    sumMapIf(map(toUInt8(least(greatest(floor(log(greatest(latency_ms, 0.001) / 10) / log(1.26)) + 1, 0), 47)), toUInt64(1)),
             status = 'ok') AS latency_hist,
    sumMapIf(map(toUInt8(least(greatest(floor(log(greatest(ifNull(ttft_ms, 0), 0.001) / 10) / log(1.26)) + 1, 0), 47)), toUInt64(1)),
             status = 'ok' AND ttft_ms IS NOT NULL) AS ttft_hist,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(latency_ms, status = 'ok') AS latency_q,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(ifNull(ttft_ms, 0), status = 'ok' AND ttft_ms IS NOT NULL) AS ttft_q
FROM events FINAL
WHERE ingested_at <= (SELECT any(cutoff) FROM rollup_backfills FINAL WHERE name = 'events_1m' AND done = 0)
  AND (SELECT count() FROM rollup_backfills FINAL WHERE name = 'events_1m' AND done = 0) = 1
GROUP BY minute, app, environment, provider, model, feature, prompt_version, operation;

INSERT INTO rollup_backfills (name, cutoff, done)
SELECT name, cutoff, 1 FROM rollup_backfills FINAL WHERE name = 'events_1m' AND done = 0;
