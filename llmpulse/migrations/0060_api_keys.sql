-- API keys (collector/keys.py, docs/security.md): only a SHA-256 of each key is stored, never the key.
-- One row per change: creating and revoking insert a row with a higher `version`; the latest row per name
-- wins (read with FINAL), so revocation needs no UPDATE and history survives until merges.
CREATE TABLE IF NOT EXISTS api_keys
(
    name       String,
    key_hash   String,
    key_prefix String,
    scope      LowCardinality(String),
    apps       Array(String),
    created_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;
