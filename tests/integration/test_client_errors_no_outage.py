"""A burst of the caller's own mistakes, reported the way OpenTelemetry instrumentations report them (the
exception class in `error.type`), never opens LLMProviderOutage; the same burst of provider errors does.

Everything runs through the real collector (OTLP span mapping, validation with normalization, the idempotent
writer into chDB, the rollups' materialized views) and the real outage analyzer with the findings engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from analyzers.engine import ClickHouseFindingStore, Engine, FindingQuery
from analyzers.errors import OutageAnalyzer
from analyzers.findings import AnalysisContext, FindingState
from analyzers.rules import Rules
from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.otlp.decode import ingest_otlp, items_from_spans
from collector.otlp.mapping import STATUS_CODE_ERROR, OtlpSpan, SpanEvent
from collector.pricing import PriceCatalog
from collector.service import IngestService
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
BASELINE = timedelta(hours=3)
BURST = timedelta(minutes=30)
PER_MINUTE = 6


def _span(n: int, at: datetime, error_type: str | None) -> OtlpSpan:
    start_ns = int(at.timestamp() * 1e9)
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 0 if error_type else 20,
    }
    events: list[SpanEvent] = []
    if error_type:
        attributes["error.type"] = error_type  # what openai-v2 and OpenLLMetry set
        events.append(SpanEvent("exception", start_ns, {"exception.type": error_type}))
    return OtlpSpan(
        trace_id=f"{n + 1:032x}",
        span_id=f"{n + 1:016x}",
        parent_span_id="",
        name="chat gpt-4o-mini",
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + 400_000_000,
        attributes=attributes,
        resource={"service.name": "support-bot"},
        status_code=STATUS_CODE_ERROR if error_type else 0,
    )


def _store_traffic(client: Client, burst_error_type: str) -> None:
    metrics = IngestMetrics()
    service = IngestService(
        validator=EventValidator(prices=PriceCatalog()),
        inserter=BulkInserter(ClickHouseEventStore(client), max_delay_s=0.02, metrics=metrics),
        metrics=metrics,
    )
    spans = []
    minutes = int((BASELINE + BURST) / timedelta(minutes=1))
    for minute in range(minutes):
        in_burst = minute >= BASELINE / timedelta(minutes=1)
        for i in range(PER_MINUTE):
            at = START + timedelta(minutes=minute, seconds=i * 60 / PER_MINUTE)
            spans.append(_span(len(spans), at, burst_error_type if in_burst else None))
    service.start()
    try:
        outcome = ingest_otlp(service, items_from_spans(spans), source="otlp", source_ref="test")
        assert not outcome.rejections
        outcome.written.result(60)
    finally:
        service.stop()


def _outage_findings(client: Client) -> list[FindingState]:
    engine = Engine(ClickHouseFindingStore(client))
    burst_start = START + BASELINE
    for minutes in range(5, int(BURST / timedelta(minutes=1)) + 1, 5):
        engine.run(OutageAnalyzer(), AnalysisContext(client, burst_start + timedelta(minutes=minutes), Rules()))
    found = ClickHouseFindingStore(client).query(FindingQuery(alertname="LLMProviderOutage"))
    return [f.state for f in found]


@pytest.mark.parametrize("error_type", ["openai.BadRequestError", "BadRequestError", "openai.AuthenticationError"])
def test_a_burst_of_client_errors_never_opens_a_provider_outage(store_client: Client, error_type: str) -> None:
    _store_traffic(store_client, error_type)
    stored = store_client.query(
        "SELECT DISTINCT error_type, metadata['error.type.raw'] FROM events WHERE status = 'error'"
    ).result_rows
    assert len(stored) == 1 and stored[0][1] == error_type
    assert stored[0][0] in ("invalid_request", "authentication")
    assert _outage_findings(store_client) == []


def test_the_same_burst_of_provider_errors_does(store_client: Client) -> None:
    _store_traffic(store_client, "openai.InternalServerError")
    assert store_client.query("SELECT DISTINCT error_type FROM events WHERE status = 'error'").result_rows == [
        ("server_error",)
    ]
    states = _outage_findings(store_client)
    assert states and FindingState.FIRING in states, states
