"""POST /v1/traces on the real embedded ClickHouse: what an OTLP exporter sees, and what is stored."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collector.api.app import create_app
from collector.auth import AllowAll
from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.otlp import decode_otlp_proto
from collector.pricing import PriceCatalog, TokenUsage
from collector.rows import EventBatch, Rejection
from collector.service import IngestService
from collector.store import ClickHouseEventStore, WriteResult
from collector.validation import EventValidator
from tests.support.otel_driver import request_to_otlp_json

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
T0 = 1_795_000_000_000_000_000  # 2026-11-18, in ns
AT = datetime.fromtimestamp(T0 / 1e9, UTC)
TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def _attrs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attrs.items()]


def span(
    n: int,
    name: str,
    attrs: dict[str, Any],
    *,
    start: int | None = None,
    latency_ms: int = 800,
    trace: bytes = TRACE,
    status: int = 0,
    parent: int = 0,
) -> Span:
    begin = T0 + n * 1_000_000_000 if start is None else start
    return Span(
        trace_id=trace,
        span_id=(n + 1).to_bytes(8, "big"),
        name=name,
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=begin,
        end_time_unix_nano=begin + latency_ms * 1_000_000 if begin else 0,
        attributes=_attrs(attrs),
        status=Status(code=status),
    )


def chat_attrs(model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        **extra,
    }


def export(spans: Sequence[Span], service_name: str = "checkout") -> ExportTraceServiceRequest:
    resource = Resource(
        attributes=_attrs({"service.name": service_name, "deployment.environment.name": "staging"})
    )
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=list(spans))])]
    )


def mixed_request() -> ExportTraceServiceRequest:
    return export(
        [
            span(0, "POST /checkout", {"http.request.method": "POST", "url.path": "/checkout"}),
            span(1, "chat gpt-4o-mini", chat_attrs(), parent=1),
            span(2, "chat", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}, parent=1),
            span(3, "chat gpt-4o", chat_attrs("gpt-4o"), start=0, parent=1),
            span(4, "SELECT orders", {"db.system.name": "postgresql"}, parent=1),
            span(
                5,
                "execute_tool lookup_order",
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"},
                latency_ms=30,
                parent=1,
            ),
        ]
    )


@pytest.fixture()
def api(store_client: Client) -> Iterator[TestClient]:
    metrics = IngestMetrics()
    service = IngestService(
        validator=EventValidator(prices=PriceCatalog()),
        inserter=BulkInserter(
            ClickHouseEventStore(store_client), max_rows=5_000, max_delay_s=0.05, metrics=metrics
        ),
        metrics=metrics,
    )
    with TestClient(create_app(service, max_body_bytes=1024 * 1024, authenticator=AllowAll())) as client:
        yield client


def _count(client: Client, table: str) -> int:
    return int(client.query(f"SELECT count() FROM {table}").result_rows[0][0])


def test_protobuf_export_stores_llm_spans_and_reports_rejected_ones(
    api: TestClient, store_client: Client
) -> None:
    response = api.post("/v1/traces", content=mixed_request().SerializeToString(), headers=PROTOBUF)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    # The HTTP and database spans are skipped, not rejected: only the two broken LLM spans count.
    assert answer.partial_success.rejected_spans == 2
    assert "2 of 6 spans rejected" in answer.partial_success.error_message
    assert "no model" in answer.partial_success.error_message
    assert "no start time" in answer.partial_success.error_message

    rows = store_client.query(
        "SELECT event_id, app, environment, operation, provider, model, input_tokens, output_tokens, "
        "latency_ms, status, cost_usd, parent_span_id, source FROM events ORDER BY start_time"
    ).result_rows
    trace = TRACE.hex()
    chat, tool = rows
    assert chat[:8] == (
        f"otel-{trace}-0000000000000002",
        "checkout",
        "staging",
        "chat",
        "openai",
        "gpt-4o-mini",
        1000,
        200,
    )
    assert chat[8] == pytest.approx(800.0) and chat[9] == "ok" and chat[11] == "0000000000000001"
    expected = PriceCatalog().cost(
        model="gpt-4o-mini", provider="openai", usage=TokenUsage(input_tokens=1000, output_tokens=200), at=AT
    )
    assert chat[10] == pytest.approx(expected.total_usd)
    assert tool[3:6] == ("execute_tool", "", "tool:lookup_order") and tool[12] == "otlp"

    rejected = store_client.query(
        "SELECT reason, payload, source FROM rejected_events ORDER BY item_index"
    ).result_rows
    assert [r[2] for r in rejected] == ["otlp", "otlp"]
    assert "chat span has no model" in rejected[0][0]
    no_model = orjson.loads(rejected[0][1])  # the span as sent, so the data is recoverable
    assert no_model["spanId"] == "0000000000000003" and no_model["resource"]["service.name"] == "checkout"

    metrics = api.get("/metrics").text
    assert 'llmpulse_otlp_spans_skipped_total{source="otlp"} 2.0' in metrics


def test_json_export_gives_the_same_events_as_protobuf(api: TestClient, store_client: Client) -> None:
    body = orjson.loads(request_to_otlp_json(mixed_request()))
    # What other SDKs and collectors send too: unknown fields, enum numbers, int64 as numbers or strings.
    body["resourceSpans"][0]["schemaUrl"] = "https://opentelemetry.io/schemas/1.30.0"
    body["resourceSpans"][0]["someFutureField"] = {"x": 1}
    first = body["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    first["startTimeUnixNano"] = int(first["startTimeUnixNano"])
    first["kind"] = 3
    first["flags"] = 257

    response = api.post(
        "/v1/traces", content=gzip.compress(orjson.dumps(body)), headers={**JSON, "content-encoding": "gzip"}
    )

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json()["partialSuccess"]["rejectedSpans"] == "2"
    from_json = store_client.query("SELECT * EXCEPT (ingested_at) FROM events ORDER BY event_id").result_rows
    store_client.command("TRUNCATE TABLE events")
    api.post("/v1/traces", content=mixed_request().SerializeToString(), headers=PROTOBUF)
    from_proto = store_client.query("SELECT * EXCEPT (ingested_at) FROM events ORDER BY event_id").result_rows
    assert len(from_json) == 2 and from_json == from_proto


def test_exporter_retries_collapse_into_one_event_per_span(api: TestClient, store_client: Client) -> None:
    body = mixed_request().SerializeToString()
    for _ in range(3):
        assert api.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    json_body = request_to_otlp_json(mixed_request())
    assert api.post("/v1/traces", content=json_body, headers=JSON).status_code == 200

    count, cost = store_client.query("SELECT count(), sum(cost_usd) FROM events").result_rows[0]
    assert count == 2
    single = PriceCatalog().cost(
        model="gpt-4o-mini", provider="openai", usage=TokenUsage(input_tokens=1000, output_tokens=200), at=AT
    )
    assert cost == pytest.approx(single.total_usd)


def test_only_non_llm_spans_is_a_plain_success(api: TestClient, store_client: Client) -> None:
    request = export([span(i, f"GET /item/{i}", {"http.request.method": "GET"}) for i in range(20)])
    response = api.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)

    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    assert _count(store_client, "events") == 0 and _count(store_client, "rejected_events") == 0
    assert 'llmpulse_otlp_spans_skipped_total{source="otlp"} 20.0' in api.get("/metrics").text


def test_truncated_protobuf_is_400_and_nothing_is_half_stored(api: TestClient, store_client: Client) -> None:
    body = mixed_request().SerializeToString()
    response = api.post("/v1/traces", content=body[: len(body) // 2], headers=PROTOBUF)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    assert b"not a valid OTLP ExportTraceServiceRequest" in response.content  # google.rpc.Status.message
    assert "retry-after" not in response.headers
    assert _count(store_client, "events") == 0
    kept = store_client.query("SELECT item_index, length(payload) FROM rejected_events").result_rows
    assert kept == [(-1, len(body) // 2)]  # the bytes are kept whole for recovery


def test_broken_json_is_400_even_after_valid_resources(api: TestClient, store_client: Client) -> None:
    good = orjson.loads(request_to_otlp_json(mixed_request()))
    broken = {"resourceSpans": [good["resourceSpans"][0], {"scopeSpans": [{"spans": "not a list"}]}]}
    response = api.post("/v1/traces", content=orjson.dumps(broken), headers=JSON)
    assert response.status_code == 400
    assert "spans must be an array" in response.json()["message"]

    not_json = api.post("/v1/traces", content=b'{"resourceSpans": [', headers=JSON)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["message"]

    bad_gzip = api.post(
        "/v1/traces", content=b"\x1f\x8bnot gzip", headers={**JSON, "content-encoding": "gzip"}
    )
    assert bad_gzip.status_code == 400
    assert _count(store_client, "events") == 0


def test_wrong_content_type_or_encoding_is_415_and_stores_nothing(
    api: TestClient, store_client: Client
) -> None:
    body = mixed_request().SerializeToString()
    wrong_type = api.post("/v1/traces", content=body, headers={"content-type": "application/grpc"})
    assert wrong_type.status_code == 415
    assert "application/x-protobuf" in wrong_type.json()["message"]

    wrong_encoding = api.post("/v1/traces", content=body, headers={**PROTOBUF, "content-encoding": "br"})
    assert wrong_encoding.status_code == 415
    assert _count(store_client, "events") == 0 and _count(store_client, "rejected_events") == 0


def test_spans_missing_required_fields_are_counted_as_rejected(api: TestClient, store_client: Client) -> None:
    no_ids = span(0, "chat", chat_attrs())
    no_ids.trace_id = b""
    no_end = span(1, "chat", chat_attrs())
    no_end.end_time_unix_nano = 0
    no_model = span(2, "chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10})
    negative = span(3, "chat", chat_attrs(**{"gen_ai.usage.output_tokens": -5}))
    body = export([no_ids, no_end, no_model, negative]).SerializeToString()

    response = api.post("/v1/traces", content=body, headers=PROTOBUF)

    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 4
    for reason in ("no valid traceId/spanId", "no end time", "no model", "output_tokens"):
        assert reason in partial.error_message
    assert _count(store_client, "events") == 0 and _count(store_client, "rejected_events") == 4


def test_oversized_body_is_413(api: TestClient, store_client: Client) -> None:
    big = export([span(i, "chat", chat_attrs(**{"gen_ai.prompt": "x" * 4096})) for i in range(300)])
    response = api.post("/v1/traces", content=big.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 413

    bomb = gzip.compress(big.SerializeToString())  # small on the wire, too large once inflated
    assert len(bomb) < 1024 * 1024
    inflated = api.post("/v1/traces", content=bomb, headers={**PROTOBUF, "content-encoding": "gzip"})
    assert inflated.status_code == 413
    assert _count(store_client, "events") == 0


class _BlockingSink:
    """Holds the writer inside its first write until released, so the queue behind it can fill up."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.stored: list[str] = []

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        self.entered.set()
        self.release.wait(10)
        self.stored.extend(batch.event_ids)
        return WriteResult(len(batch), 0)

    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        pass


class _FailingSink:
    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        raise ConnectionError("ClickHouse is down")

    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        raise ConnectionError("ClickHouse is down")


def _service(sink: Any, **inserter: Any) -> IngestService:
    metrics = IngestMetrics()
    return IngestService(
        validator=EventValidator(prices=PriceCatalog()),
        inserter=BulkInserter(sink, max_delay_s=0.01, metrics=metrics, **inserter),
        metrics=metrics,
    )


def test_overload_is_429_with_retry_after_and_nothing_accepted() -> None:
    sink = _BlockingSink()
    service = _service(sink, max_pending_rows=10, write_attempts=1)
    with TestClient(create_app(service, authenticator=AllowAll())) as client:
        # One batch occupies the writer, a second fills the queue behind it to its bound.
        first = decode_otlp_proto(export([span(0, "chat", chat_attrs())]).SerializeToString())
        busy = service.ingest(first, source="test", source_ref="first")
        assert sink.entered.wait(5)
        queued = decode_otlp_proto(
            export([span(i, "chat", chat_attrs()) for i in range(1, 11)]).SerializeToString()
        )
        service.ingest(queued, source="test", source_ref="queued")

        late = export([span(50, "chat", chat_attrs())]).SerializeToString()
        response = client.post("/v1/traces", content=late, headers=PROTOBUF)

        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        sink.release.set()
        busy.written.result(5)
    assert len(sink.stored) == 11 and f"otel-{TRACE.hex()}-{51:016x}" not in sink.stored


def test_store_failure_is_503_with_retry_after() -> None:
    with TestClient(create_app(_service(_FailingSink(), write_attempts=1), authenticator=AllowAll())) as client:
        response = client.post(
            "/v1/traces", content=request_to_otlp_json(export([span(0, "chat", chat_attrs())])), headers=JSON
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "nothing from this request was stored" in response.json()["message"]
