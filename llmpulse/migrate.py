"""Numbered, idempotent SQL migrations (llmpulse/migrations/NNNN_name.sql), applied in order at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from clickhouse_connect.driver.client import Client

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Retention:
    events_days: int
    text_days: int
    rejected_days: int


def split_statements(sql: str) -> tuple[str, ...]:
    """Split on semicolons that end a line; comment-only chunks are dropped."""
    chunks = re.split(r";\s*(?:\n|$)", sql)
    statements = []
    for chunk in chunks:
        body = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--")).strip()
        if body:
            statements.append(chunk.strip())
    return tuple(statements)


def load_migrations() -> list[Migration]:
    migrations = []
    for entry in resources.files("llmpulse.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if not match:
            continue
        migrations.append(Migration(int(match.group(1)), match.group(2), split_statements(entry.read_text("utf-8"))))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return migrations


def applied_versions(client: Client) -> set[int]:
    client.command(LEDGER_DDL)
    return {row[0] for row in client.query("SELECT DISTINCT version FROM schema_migrations").result_rows}


def migrate(client: Client, retention: Retention | None = None) -> list[Migration]:
    """Apply pending migrations; returns the ones applied now. Safe to run from every process start."""
    done = applied_versions(client)
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert("schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"])
        applied.append(migration)
    if retention is not None:
        apply_retention(client, retention)
    return applied


def apply_retention(client: Client, retention: Retention) -> None:
    """Retention is configuration, not schema: align the TTLs with settings, touching only what differs."""
    wanted = {
        "events": (
            f"toDateTime(start_time) + toIntervalDay({retention.events_days})",
            [
                ("input_text", "String CODEC(ZSTD(3))"),
                ("output_text", "String CODEC(ZSTD(3))"),
                ("input_messages", "String CODEC(ZSTD(3))"),
                ("output_messages", "String CODEC(ZSTD(3))"),
            ],
        ),
        "rejected_events": (f"toDateTime(received_at) + toIntervalDay({retention.rejected_days})", []),
    }
    for table, (table_ttl, text_columns) in wanted.items():
        current = client.command(
            "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        )
        current_sql = str(current)
        if f"TTL {table_ttl}" not in current_sql:
            client.command(f"ALTER TABLE {table} MODIFY TTL {table_ttl}", settings={"materialize_ttl_after_modify": 0})
        for column, column_type in text_columns:
            column_ttl = f"toDateTime(start_time) + toIntervalDay({retention.text_days})"
            if f"`{column}` {column_type} TTL {column_ttl}" not in current_sql:
                client.command(
                    f"ALTER TABLE {table} MODIFY COLUMN {column} {column_type} TTL {column_ttl}",
                    settings={"materialize_ttl_after_modify": 0},
                )
