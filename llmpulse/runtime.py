"""Composition root: builds the collector's parts from Settings. The only place that reads Settings for them."""

from __future__ import annotations

from pathlib import Path

import yaml
from clickhouse_connect.driver.client import Client
from pydantic import TypeAdapter, ValidationError

from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.pricing import PriceCatalog, PriceOverride
from collector.service import IngestService
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, IngestLimits
from collector.validation_pool import ValidationPool
from llmpulse.clickhouse import connect
from llmpulse.migrate import Retention, migrate
from llmpulse.settings import Settings


class ConfigError(ValueError):
    pass


def open_store(settings: Settings) -> Client:
    """Connect and bring the schema up to date (idempotent)."""
    client = connect(settings.clickhouse_url)
    migrate(
        client,
        Retention(
            events_days=settings.events_retention_days,
            text_days=settings.text_retention_days,
            rejected_days=settings.rejected_retention_days,
        ),
    )
    return client


def load_price_overrides(path: Path | None) -> list[PriceOverride]:
    if path is None:
        return []
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read price overrides {path}: {exc}") from None
    if isinstance(raw, dict):
        raw = raw.get("prices", [])
    try:
        return TypeAdapter(list[PriceOverride]).validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid price overrides in {path}: {exc}") from None


def build_price_catalog(settings: Settings) -> PriceCatalog:
    return PriceCatalog(load_price_overrides(settings.prices_file))


def build_ingest_service(
    settings: Settings, client: Client, *, metrics: IngestMetrics | None = None, worker_processes: int = 0
) -> IngestService:
    """`worker_processes` > 0 validates request bodies in that many processes (the API uses settings.ingest_workers)."""
    metrics = metrics or IngestMetrics()
    limits = IngestLimits(max_text_bytes=settings.max_text_bytes, max_event_bytes=settings.max_event_bytes)
    overrides = load_price_overrides(settings.prices_file)
    validator = EventValidator(prices=PriceCatalog(overrides), limits=limits)
    pool = ValidationPool(processes=worker_processes, limits=limits, overrides=overrides) if worker_processes else None
    inserter = BulkInserter(
        ClickHouseEventStore(client),
        max_rows=settings.batch_max_rows,
        max_delay_s=settings.batch_max_seconds,
        max_pending_rows=settings.batch_max_pending_rows,
        metrics=metrics,
    )
    return IngestService(validator=validator, inserter=inserter, metrics=metrics, pool=pool)
