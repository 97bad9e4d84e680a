-- Findings: one row per episode of a condition (alertname + labels), updated in place as it goes
-- pending -> firing -> resolved. ReplacingMergeTree keeps the highest revision; readers use FINAL.
CREATE TABLE IF NOT EXISTS findings
(
    finding_id   String,
    fingerprint  String,
    alertname    LowCardinality(String),
    severity     LowCardinality(String),
    state        LowCardinality(String),
    analyzer     LowCardinality(String),
    labels       Map(String, String),
    value        Nullable(Float64),
    baseline     Nullable(Float64),
    threshold    Nullable(Float64),
    summary      String,
    evidence     String,
    links        Array(String),
    for_seconds  UInt32,
    first_seen   DateTime64(3, 'UTC'),
    last_seen    DateTime64(3, 'UTC'),
    fired_at     Nullable(DateTime64(3, 'UTC')),
    resolved_at  Nullable(DateTime64(3, 'UTC')),
    details      String,
    revision     UInt64,
    updated_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (finding_id)
TTL toDateTime(first_seen) + INTERVAL 400 DAY;
