-- Alert history (issue 5): one row per transition of an alert — it started firing, or it resolved — as
-- llmpulse sent it (or, without an Alertmanager, as `llmpulse alerts` shows it). Re-recording the same
-- transition (a restart re-dispatching what is active) collapses on the sorting key.
CREATE TABLE IF NOT EXISTS alerts
(
    fingerprint   String,
    alertname     LowCardinality(String),
    severity      LowCardinality(String),
    status        LowCardinality(String),
    labels        Map(LowCardinality(String), String),
    finding_id    String,
    summary       String,
    description   String,
    value         Nullable(Float64),
    baseline      Nullable(Float64),
    threshold     Nullable(Float64),
    started_at    DateTime64(3, 'UTC'),
    resolved_at   Nullable(DateTime64(3, 'UTC')),
    recorded_at   DateTime64(3, 'UTC'),
    runbook_url   String,
    dashboard_url String,
    generator_url String
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (fingerprint, started_at, status);
