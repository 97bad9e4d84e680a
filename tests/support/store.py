"""A real ClickHouse (embedded chDB) for tests: one data path per test session, one database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from llmpulse.clickhouse import connect
from llmpulse.migrate import Retention, migrate


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("chdb")
    return f"chdb://{path}"


@pytest.fixture()
def store_client(chdb_url: str) -> Iterator[Client]:
    """A migrated, empty database of its own for each test."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    client = connect(chdb_url, database=database)
    migrate(client, Retention(events_days=90, text_days=30, rejected_days=30))
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
