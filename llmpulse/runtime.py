"""Composition root: builds the collector's parts from Settings. The only place that reads Settings for them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from collector.kafka.consumer import KafkaCollector
    from collector.store import EventSink


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


def build_kafka_collector(
    settings: Settings,
    client: Client,
    *,
    registry: CollectorRegistry | None = None,
    sink: EventSink | None = None,
) -> KafkaCollector:
    """The Kafka consumer-group member (`llmpulse collect`, `llmpulse serve --kafka`).

    `registry`: where its metrics go (the API's registry when it runs inside `serve`); `sink`: a
    replacement store (tests wrap the real one to inject faults).
    """
    from collector.kafka.consumer import KafkaCollector, KafkaConsumerConfig, build_consumer
    from collector.kafka.dead_letter import build_dead_letter_producer
    from collector.kafka.decoders import default_decoders
    from collector.kafka.metrics import KafkaMetrics
    from collector.kafka.prepare_pool import PrepareConfig, PreparePool
    from collector.otlp.mapping import OtlpOptions

    otlp_options = OtlpOptions.from_settings(settings)
    decoders = default_decoders(settings.kafka_topic_encodings, otlp_options=otlp_options)
    consumer = build_consumer(
        KafkaConsumerConfig(
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.kafka_group_id,
            client_id=settings.kafka_client_id,
            group_instance_id=settings.kafka_group_instance_id,
            auto_offset_reset=settings.kafka_auto_offset_reset,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
            check_crcs=settings.kafka_check_crcs,
        )
    )
    dead_letters = build_dead_letter_producer(
        settings.kafka_bootstrap,
        settings.kafka_dead_letter_topic,
        client_id=settings.kafka_client_id,
        max_message_bytes=settings.kafka_dead_letter_max_message_bytes,
    )
    limits = IngestLimits(max_text_bytes=settings.max_text_bytes, max_event_bytes=settings.max_event_bytes)
    overrides = load_price_overrides(settings.prices_file)
    validator = EventValidator(prices=PriceCatalog(overrides), limits=limits)
    # Started and stopped by the collector's run(), so `collect` and `serve --kafka` need nothing more.
    pool = (
        PreparePool(
            processes=settings.kafka_prepare_workers,
            chunk_messages=settings.kafka_prepare_chunk_messages,
            config=PrepareConfig(
                limits=limits,
                price_overrides=tuple(overrides),
                topic_encodings=dict(settings.kafka_topic_encodings),
                otlp_options=otlp_options,
            ),
        )
        if settings.kafka_prepare_workers
        else None
    )
    return KafkaCollector(
        consumer,
        topics=settings.kafka_topics,
        validator=validator,
        sink=sink or ClickHouseEventStore(client),
        dead_letters=dead_letters,
        decoders=decoders,
        metrics=KafkaMetrics(registry),
        batch_max_messages=settings.kafka_batch_max_messages,
        batch_max_bytes=settings.kafka_batch_max_bytes,
        batch_max_seconds=settings.kafka_batch_max_seconds,
        poll_timeout_ms=settings.kafka_poll_timeout_ms,
        max_poll_records=settings.kafka_max_poll_records,
        max_in_flight_batches=settings.kafka_max_in_flight_batches,
        retry_backoff_s=settings.kafka_retry_backoff_s,
        retry_backoff_max_s=settings.kafka_retry_backoff_max_s,
        revoke_timeout_s=settings.kafka_revoke_timeout_s,
        shutdown_timeout_s=settings.kafka_shutdown_timeout_s,
        prepare_pool=pool,
    )
