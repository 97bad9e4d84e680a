-- Everything a client sent that did not become an event: the raw bytes, where they came from and why.
CREATE TABLE IF NOT EXISTS rejected_events
(
    received_at DateTime64(3, 'UTC'),
    source      LowCardinality(String),
    source_ref  String,
    item_index  Int64,
    reason      String,
    payload     String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toDate(received_at)
ORDER BY (source, received_at)
TTL toDateTime(received_at) + INTERVAL 30 DAY;
