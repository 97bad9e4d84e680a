"""`llmpulse serve`: the HTTP API, the analyzer scheduler, alert delivery and (optionally) the Kafka consumer
in one process, started and stopped in dependency order."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI

from alerts.api import runbooks_router
from alerts.factory import build_alert_dispatcher
from alerts.from_findings import EngineFindingsSource, findings_listener
from analyzers.api import findings_router
from analyzers.engine import ClickHouseFindingStore
from analyzers.scheduler import AnalyzerScheduler
from collector.api.app import Component, create_app
from collector.otlp.content import ClickHouseContentStore, ContentJoiner, UnjoinedContentGauge
from collector.otlp.grpc import GrpcSettings, OtlpGrpcReceiver
from collector.otlp.mapping import OtlpOptions
from collector.queries import ClickHouseEventQueries
from llmpulse.runtime import build_ingest_service, build_kafka_collector
from llmpulse.security import build_authenticator
from llmpulse.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Lifecycle:
    name: str
    on_start: Callable[[], None]
    on_stop: Callable[[], None]

    def start(self) -> None:
        log.info("starting %s", self.name)
        self.on_start()

    def stop(self) -> None:
        log.info("stopping %s", self.name)
        self.on_stop()


def build_server_app(settings: Settings, client: Client, *, kafka: bool, analyzers: bool) -> FastAPI:
    """The whole `serve` process as an ASGI app; components start with the app and stop in reverse order."""
    service = build_ingest_service(settings, client, worker_processes=settings.ingest_workers)
    registry = service.metrics.registry
    components: list[Component] = []

    # Alert delivery starts before the analyzers so no transition they report is missed.
    dispatcher = build_alert_dispatcher(settings, client, registry=registry)
    findings_source = EngineFindingsSource(ClickHouseFindingStore(client))
    components.append(
        _Lifecycle("alert dispatcher", lambda: dispatcher.start(findings_source), lambda: _stop_dispatcher(dispatcher))
    )
    if analyzers:
        scheduler = AnalyzerScheduler(client, settings, listeners=[findings_listener(dispatcher)])
        components.append(_Lifecycle("analyzer scheduler", scheduler.start, scheduler.stop))
    if kafka:
        # The consumer's metrics join the API's registry, so /metrics shows every front end.
        collector = build_kafka_collector(settings, client, registry=registry)
        components.append(_Lifecycle("kafka collector", collector.start, collector.stop))

    authenticator, key_store = build_authenticator(settings, client)
    # Content of OTLP log events joined to spans (HTTP and gRPC share it), and the OTLP/gRPC receiver.
    joiner = ContentJoiner(
        ClickHouseContentStore(client),
        service.validator,
        window=timedelta(seconds=settings.otlp_content_join_seconds),
        registry=registry,
    )
    unjoined = UnjoinedContentGauge(joiner)
    components.append(_Lifecycle("OTLP content gauge", unjoined.start, unjoined.stop))
    if settings.otlp_grpc_port:
        receiver = OtlpGrpcReceiver(
            service,
            authenticator=authenticator,
            options=OtlpOptions.from_settings(settings),
            joiner=joiner,
            settings=GrpcSettings(
                host=settings.otlp_grpc_host or settings.http_host,
                port=settings.otlp_grpc_port,
                max_message_bytes=settings.otlp_grpc_max_message_bytes,
                workers=settings.otlp_grpc_workers,
            ),
        )
        components.append(_Lifecycle("OTLP/gRPC receiver", receiver.start, receiver.stop))
    api = create_app(
        service,
        max_body_bytes=settings.max_body_bytes,
        routers=[findings_router(lambda: client), runbooks_router()],
        components=components,
        otlp_options=OtlpOptions.from_settings(settings),
        authenticator=authenticator,
        key_store=key_store,
        content_joiner=joiner,
    )
    api.state.event_queries = ClickHouseEventQueries(client)  # GET /v1/events
    return api


def _stop_dispatcher(dispatcher: object) -> None:
    stop = getattr(dispatcher, "stop")  # noqa: B009 -- typed in alerts; kept loose to avoid a cycle in typing
    if not stop(flush_timeout=5):
        log.warning("some alert state changes were not delivered before shutdown")
