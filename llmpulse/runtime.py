"""Composition root: builds the collector's parts from Settings. The only place that reads Settings for them."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import TypeAdapter, ValidationError

from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.pricing import PriceCatalog, PriceOverride
from collector.service import IngestService
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, IngestLimits
from collector.validation_pool import ValidationPool
from llmpulse.clickhouse import ServerTLS, StoreLockedError, StoreURLError, connect, is_embedded
from llmpulse.errors import OperatorError
from llmpulse.migrate import Retention, migrate
from llmpulse.security import redaction_policy
from llmpulse.settings import Settings
from llmpulse.urls import display_url

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from collector.kafka.consumer import KafkaCollector
    from collector.store import EventSink


class ConfigError(ValueError):
    pass


def read_secret_file(path: Path, setting: str) -> str:
    """A password/token kept in a file (a Docker or Kubernetes secret); the trailing newline is not part of it."""
    try:
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        raise OperatorError(f"cannot read {setting} {path}: {exc.strerror or exc}") from None
    if not text:
        raise OperatorError(f"{setting} {path} is empty")
    return text


def _existing_file(path: Path | None, setting: str) -> Path | None:
    if path is not None and not path.is_file():
        raise OperatorError(f"{setting} {path}: no such file")
    return path


def clickhouse_tls(settings: Settings) -> ServerTLS:
    return ServerTLS(
        verify=settings.clickhouse_tls_verify,
        ca_file=_existing_file(settings.clickhouse_ca_file, "LLMPULSE_CLICKHOUSE_CA_FILE"),
        client_cert_file=_existing_file(settings.clickhouse_client_cert_file, "LLMPULSE_CLICKHOUSE_CLIENT_CERT_FILE"),
        client_key_file=_existing_file(settings.clickhouse_client_key_file, "LLMPULSE_CLICKHOUSE_CLIENT_KEY_FILE"),
    )


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _unreachable_reason(exc: BaseException) -> str:
    """A few words on why a ClickHouse server could not be used, from clickhouse-connect's exception chain."""
    text = str(exc)
    chain: list[BaseException] = []
    cursor: BaseException | None = exc
    while cursor is not None and len(chain) < 10:
        chain.append(cursor)
        cursor = cursor.__cause__ or cursor.__context__
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"its TLS certificate is not trusted ({item.verify_message})"
        if isinstance(item, ssl.SSLError):
            return f"TLS failed ({item.reason or item})"
    for needle, reason in (
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
        ("Connection refused", "connection refused (is ClickHouse running and is the port right?)"),
        ("Name or service not known", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("timed out", "timed out"),
        ("WRONG_VERSION_NUMBER", "it does not speak TLS on that port (use http://, or the https port)"),
        ("AUTHENTICATION_FAILED", "authentication failed (user/password)"),
        ("Authentication failed", "authentication failed (user/password)"),
        ("UNKNOWN_DATABASE", "the database does not exist"),
    ):
        if needle in text:
            return reason
    root = _root_cause(exc)
    return (str(root) or type(root).__name__).splitlines()[0][:200]


@contextlib.contextmanager
def _quiet_driver() -> Iterator[None]:
    # clickhouse-connect logs a warning (with a traceback) before raising; the raised error is what we report.
    driver_logger = logging.getLogger("clickhouse_connect")
    previous = driver_logger.level
    driver_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        driver_logger.setLevel(previous)


def connect_store(settings: Settings) -> Client:
    """The store of LLMPULSE_CLICKHOUSE_URL (with the password file and TLS settings), or an OperatorError
    saying which URL (password masked) could not be used, why, and which setting to change."""
    url = settings.clickhouse_url
    shown = display_url(url)
    try:
        if is_embedded(url):
            try:
                return connect(url)
            except StoreLockedError as exc:
                holder = f"another process (pid {exc.pid})" if exc.pid is not None else "another process"
                raise OperatorError(
                    f"{holder} holds the embedded store at {exc.path} (LLMPULSE_CLICKHOUSE_URL) and chDB lets only "
                    "one process open it: stop that process (e.g. `llmpulse serve`), query it over its HTTP API "
                    "(GET /v1/events, /v1/findings), or share a ClickHouse server (LLMPULSE_CLICKHOUSE_URL=http://...)"
                ) from None
            except OSError as exc:
                raise OperatorError(
                    f"cannot create the embedded store's data directory for {shown} (LLMPULSE_CLICKHOUSE_URL): "
                    f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}"
                ) from None
            except ClickHouseError as exc:
                raise OperatorError(
                    f"cannot open the embedded store {shown} (LLMPULSE_CLICKHOUSE_URL): {_unreachable_reason(exc)}"
                ) from None
        password = (
            read_secret_file(settings.clickhouse_password_file, "LLMPULSE_CLICKHOUSE_PASSWORD_FILE")
            if settings.clickhouse_password_file is not None
            else None
        )
        tls = clickhouse_tls(settings)
        try:
            with _quiet_driver():
                return connect(url, password=password, tls=tls)
        except ClickHouseError as exc:
            hint = ""
            reason = _unreachable_reason(exc)
            if "not trusted" in reason:
                hint = "; set LLMPULSE_CLICKHOUSE_CA_FILE to the CA that signed it"
            elif "authentication" in reason:
                hint = "; check the user in LLMPULSE_CLICKHOUSE_URL and LLMPULSE_CLICKHOUSE_PASSWORD_FILE"
            raise OperatorError(
                f"cannot reach ClickHouse at {shown} (LLMPULSE_CLICKHOUSE_URL): {reason}{hint}"
            ) from None
    except StoreURLError as exc:
        raise OperatorError(f"LLMPULSE_CLICKHOUSE_URL: {exc}") from None


def open_store(settings: Settings) -> Client:
    """Connect and bring the schema up to date (idempotent)."""
    client = connect_store(settings)
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
    redaction = redaction_policy(settings)
    validator = EventValidator(prices=PriceCatalog(overrides), limits=limits, redaction=redaction)
    pool = (
        ValidationPool(processes=worker_processes, limits=limits, overrides=overrides, redaction=redaction)
        if worker_processes
        else None
    )
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
    role: str = "serve",
    check_cluster: bool = True,
) -> KafkaCollector:
    """The Kafka consumer-group member (`llmpulse collect`, `llmpulse serve --kafka`).

    `registry`: where its metrics go (the API's registry when it runs inside `serve`); `sink`: a
    replacement store (tests wrap the real one to inject faults); `role` ("collect" | "serve") names the
    process in the static group.instance.id derived from the host; `check_cluster`: first check, in
    bounded time, that the brokers answer, accept the credentials and have the topics (OperatorError if not).
    """
    from collector.kafka.consumer import KafkaCollector, KafkaConsumerConfig, build_consumer
    from collector.kafka.dead_letter import build_dead_letter_producer
    from collector.kafka.decoders import default_decoders
    from collector.kafka.metrics import KafkaMetrics
    from collector.kafka.prepare_pool import PrepareConfig, PreparePool
    from collector.otlp.mapping import OtlpOptions
    from llmpulse.kafka_config import (
        check_kafka_cluster,
        group_instance_id,
        kafka_client_config,
        kafka_security,
        static_member_leaver,
    )

    # One set of connection/security kwargs for the consumer, the dead-letter producer and the admin check.
    security = kafka_security(settings)
    client_config = kafka_client_config(settings, security)
    security_kwargs = {k: v for k, v in client_config.items() if k not in ("bootstrap_servers", "client_id")}
    if check_cluster:
        check_kafka_cluster(settings, client_config, security)
    instance_id = group_instance_id(settings, role=role)
    otlp_options = OtlpOptions.from_settings(settings)
    decoders = default_decoders(settings.kafka_topic_encodings, otlp_options=otlp_options)
    consumer = build_consumer(
        KafkaConsumerConfig(
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.kafka_group_id,
            client_id=settings.kafka_client_id,
            group_instance_id=instance_id,
            auto_offset_reset=settings.kafka_auto_offset_reset,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
            check_crcs=settings.kafka_check_crcs,
            extra=security_kwargs,
        )
    )
    dead_letters = build_dead_letter_producer(
        settings.kafka_bootstrap,
        settings.kafka_dead_letter_topic,
        client_id=settings.kafka_client_id,
        max_message_bytes=settings.kafka_dead_letter_max_message_bytes,
        **security_kwargs,
    )
    limits = IngestLimits(max_text_bytes=settings.max_text_bytes, max_event_bytes=settings.max_event_bytes)
    overrides = load_price_overrides(settings.prices_file)
    redaction = redaction_policy(settings)
    validator = EventValidator(prices=PriceCatalog(overrides), limits=limits, redaction=redaction)
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
                redaction=redaction,
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
        group_instance_id=instance_id,
        leave_static_group=static_member_leaver(settings, client_config, instance_id),
    )
