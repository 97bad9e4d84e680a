-- Hourly cost rollups per trace and per user (issue 8): the Cost and Weekly review dashboards rank the most
-- expensive traces and users from these instead of grouping raw events by trace_id/user_id over the range.
-- Only model calls count (tool runs and agent spans carry no usage: analyzers.rules.DEFAULT_EXCLUDED_OPERATIONS).
-- A trace that crosses an hour boundary has a row per hour; readers group by trace_id.
-- Events stored before this migration are folded in once, with the same cutoff bookkeeping as events_1m.
CREATE TABLE IF NOT EXISTS trace_costs_1h
(
    hour            DateTime('UTC'),
    app             LowCardinality(String),
    environment     LowCardinality(String),
    trace_id        String,
    user_id         SimpleAggregateFunction(any, String),
    calls           SimpleAggregateFunction(sum, UInt64),
    errors          SimpleAggregateFunction(sum, UInt64),
    unpriced_calls  SimpleAggregateFunction(sum, UInt64),
    tokens_sum      SimpleAggregateFunction(sum, UInt64),
    cost_usd_sum    SimpleAggregateFunction(sum, Float64),
    first_start     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_end        SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    features        SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    providers       SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    models          SimpleAggregateFunction(groupUniqArrayArray, Array(String))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, app, environment, trace_id)
TTL hour + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS user_costs_1h
(
    hour            DateTime('UTC'),
    app             LowCardinality(String),
    environment     LowCardinality(String),
    user_id         String,
    calls           SimpleAggregateFunction(sum, UInt64),
    errors          SimpleAggregateFunction(sum, UInt64),
    unpriced_calls  SimpleAggregateFunction(sum, UInt64),
    tokens_sum      SimpleAggregateFunction(sum, UInt64),
    cost_usd_sum    SimpleAggregateFunction(sum, Float64),
    features        SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    providers       SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    models          SimpleAggregateFunction(groupUniqArrayArray, Array(String))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, app, environment, user_id)
TTL hour + INTERVAL 400 DAY;

INSERT INTO rollup_backfills (name, cutoff, done)
SELECT 'cost_rollups_1h', (SELECT max(ingested_at) FROM events), 0
WHERE (SELECT count() FROM rollup_backfills WHERE name = 'cost_rollups_1h') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS trace_costs_1h_mv TO trace_costs_1h AS
SELECT
    toStartOfHour(start_time) AS hour,
    app, environment, trace_id,
    any(user_id) AS user_id,
    count() AS calls,
    countIf(status = 'error') AS errors,
    countIf(cost_usd IS NULL) AS unpriced_calls,
    sum(toUInt64(input_tokens) + output_tokens) AS tokens_sum,
    sum(ifNull(cost_usd, 0)) AS cost_usd_sum,
    min(start_time) AS first_start,
    max(end_time) AS last_end,
    groupUniqArray(toString(feature)) AS features,
    groupUniqArray(toString(provider)) AS providers,
    groupUniqArray(toString(model)) AS models
FROM events
WHERE trace_id != '' AND operation NOT IN ('execute_tool', 'invoke_agent')
GROUP BY hour, app, environment, trace_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS user_costs_1h_mv TO user_costs_1h AS
SELECT
    toStartOfHour(start_time) AS hour,
    app, environment, user_id,
    count() AS calls,
    countIf(status = 'error') AS errors,
    countIf(cost_usd IS NULL) AS unpriced_calls,
    sum(toUInt64(input_tokens) + output_tokens) AS tokens_sum,
    sum(ifNull(cost_usd, 0)) AS cost_usd_sum,
    groupUniqArray(toString(feature)) AS features,
    groupUniqArray(toString(provider)) AS providers,
    groupUniqArray(toString(model)) AS models
FROM events
WHERE user_id != '' AND operation NOT IN ('execute_tool', 'invoke_agent')
GROUP BY hour, app, environment, user_id;

INSERT INTO trace_costs_1h
SELECT
    toStartOfHour(start_time) AS hour,
    app, environment, trace_id,
    any(user_id), count(), countIf(status = 'error'), countIf(cost_usd IS NULL),
    sum(toUInt64(input_tokens) + output_tokens), sum(ifNull(cost_usd, 0)), min(start_time), max(end_time),
    groupUniqArray(toString(feature)), groupUniqArray(toString(provider)), groupUniqArray(toString(model))
FROM events FINAL
WHERE trace_id != '' AND operation NOT IN ('execute_tool', 'invoke_agent')
  AND ingested_at <= (SELECT any(cutoff) FROM rollup_backfills FINAL WHERE name = 'cost_rollups_1h' AND done = 0)
  AND (SELECT count() FROM rollup_backfills FINAL WHERE name = 'cost_rollups_1h' AND done = 0) = 1
GROUP BY hour, app, environment, trace_id;

INSERT INTO user_costs_1h
SELECT
    toStartOfHour(start_time) AS hour,
    app, environment, user_id,
    count(), countIf(status = 'error'), countIf(cost_usd IS NULL),
    sum(toUInt64(input_tokens) + output_tokens), sum(ifNull(cost_usd, 0)),
    groupUniqArray(toString(feature)), groupUniqArray(toString(provider)), groupUniqArray(toString(model))
FROM events FINAL
WHERE user_id != '' AND operation NOT IN ('execute_tool', 'invoke_agent')
  AND ingested_at <= (SELECT any(cutoff) FROM rollup_backfills FINAL WHERE name = 'cost_rollups_1h' AND done = 0)
  AND (SELECT count() FROM rollup_backfills FINAL WHERE name = 'cost_rollups_1h' AND done = 0) = 1
GROUP BY hour, app, environment, user_id;

INSERT INTO rollup_backfills (name, cutoff, done)
SELECT name, cutoff, 1 FROM rollup_backfills FINAL WHERE name = 'cost_rollups_1h' AND done = 0;
