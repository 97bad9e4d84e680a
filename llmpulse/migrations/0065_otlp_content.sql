-- GenAI prompts and completions that arrived as OTLP log events (POST /v1/logs, gRPC LogsService), one row per
-- log record, keyed by the event of their span (otel-<trace_id>-<span_id>). Content that arrives before its
-- span waits here and is merged into the event when the span is stored; content that arrives after is
-- written onto the stored event (collector/otlp/content.py; docs/otlp.md "Content from log events").
-- Rows stay after the join: a retried export collapses by content_id, and content whose span never arrived
-- within LLMPULSE_OTLP_CONTENT_JOIN_SECONDS is still here to inspect (and counted by
-- llmpulse_otlp_content_unjoined) until the TTL removes it.
CREATE TABLE IF NOT EXISTS otlp_content
(
    event_id        String,
    content_id      String,
    app             LowCardinality(String),
    received_at     DateTime64(3, 'UTC'),
    time_unix_nano  UInt64,
    seq             UInt32,
    event_name      LowCardinality(String),
    input_messages  String CODEC(ZSTD(3)),
    output_messages String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toDate(received_at)
ORDER BY (event_id, content_id)
TTL toDateTime(received_at) + INTERVAL 7 DAY;
