"""POST /v1/logs on the real embedded ClickHouse: GenAI content from log events lands on the event of its span,
whichever arrives first, without a second row or a double-counted rollup."""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collector.api.app import create_app
from collector.auth import AllowAll
from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.otlp.content import ClickHouseContentStore, ContentJoiner
from collector.pricing import PriceCatalog
from collector.service import IngestService
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator
from tests.integration.test_otlp_http import PROTOBUF, TRACE, _attrs, chat_attrs, export, span

T_SPAN = 1_795_000_000_000_000_000
SPAN_N = 1
SPAN_ID = (SPAN_N + 1).to_bytes(8, "big")
EVENT_ID = f"otel-{TRACE.hex()}-{SPAN_ID.hex()}"


def _any(value: Any) -> AnyValue:
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=_any(v)) for k, v in value.items()]))
    if isinstance(value, list):
        from opentelemetry.proto.common.v1.common_pb2 import ArrayValue

        return AnyValue(array_value=ArrayValue(values=[_any(v) for v in value]))
    if isinstance(value, int) and not isinstance(value, bool):
        return AnyValue(int_value=value)
    return AnyValue(string_value=str(value))


def record(
    name: str,
    body: Any = None,
    *,
    attrs: dict[str, Any] | None = None,
    as_attribute: bool = False,
    offset_ms: int = 0,
    span_id: bytes = SPAN_ID,
) -> LogRecord:
    attributes = {"gen_ai.system": "openai", **(attrs or {})}
    if as_attribute:  # older SDKs: the event name as an attribute, not the LogRecord field
        attributes["event.name"] = name
    log = LogRecord(
        time_unix_nano=T_SPAN + offset_ms * 1_000_000,
        trace_id=TRACE,
        span_id=span_id,
        attributes=_attrs(attributes),
        event_name="" if as_attribute else name,
    )
    if body is not None:
        log.body.CopyFrom(_any(body))
    return log


def logs_request(records: Sequence[LogRecord], service_name: str = "checkout") -> ExportLogsServiceRequest:
    resource = Resource(attributes=_attrs({"service.name": service_name}))
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=list(records))])]
    )


def per_message_records() -> list[LogRecord]:
    """What openai-v2 emits in its default content mode (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)."""
    return [
        record("gen_ai.system.message", {"content": "You are terse."}),
        record("gen_ai.user.message", {"content": "Where is my order?"}, offset_ms=1),
        record(
            "gen_ai.choice",
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "It ships today."}},
            offset_ms=700,
        ),
    ]


def content_span() -> Any:
    # No content on the span: the instrumentation sends it as log events.
    return export([span(SPAN_N, "chat gpt-4o-mini", chat_attrs(), start=T_SPAN)])


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    http: TestClient
    joiner: ContentJoiner
    clock: Clock
    service: IngestService


@pytest.fixture()
def api(store_client: Client) -> Iterator[Api]:
    metrics = IngestMetrics()
    validator = EventValidator(prices=PriceCatalog())
    service = IngestService(
        validator=validator,
        inserter=BulkInserter(ClickHouseEventStore(store_client), max_delay_s=0.02, metrics=metrics),
        metrics=metrics,
    )
    clock = Clock()
    joiner = ContentJoiner(
        ClickHouseContentStore(store_client),
        validator,
        window=timedelta(seconds=300),
        registry=metrics.registry,
        clock=clock,
    )
    app = create_app(service, authenticator=AllowAll(), content_joiner=joiner)
    with TestClient(app) as http:
        yield Api(http, joiner, clock, service)


def _post_logs(api: Api, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse:
    response = api.http.post("/v1/logs", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200, response.text
    return ExportLogsServiceResponse.FromString(response.content)


def _post_traces(api: Api, request: Any) -> None:
    response = api.http.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200, response.text


def _event(client: Client) -> dict[str, Any]:
    columns = ("event_id", "input_text", "output_text", "input_messages", "output_messages", "finish_reason")
    rows = client.query(f"SELECT {', '.join(columns)} FROM events").result_rows
    assert len(rows) == 1, "one row per call, never a second one for its content"
    return dict(zip(columns, rows[0], strict=True))


def _requests_rolled_up(client: Client) -> int:
    return int(client.query("SELECT sum(requests) FROM events_1m").result_rows[0][0])


def _metric(api: Api, outcome: str) -> float:
    value = api.service.metrics.registry.get_sample_value("llmpulse_otlp_content_records_total", {"outcome": outcome})
    return value or 0.0


def test_content_before_the_span_is_stored_on_the_event(api: Api, store_client: Client) -> None:
    answer = _post_logs(api, logs_request(per_message_records()))
    assert not answer.HasField("partial_success") or answer.partial_success.rejected_log_records == 0
    _post_traces(api, content_span())

    event = _event(store_client)
    assert event["event_id"] == EVENT_ID
    assert "You are terse." in event["input_text"] and "Where is my order?" in event["input_text"]
    assert event["output_text"] == "It ships today."
    roles = [m["role"] for m in orjson.loads(event["input_messages"])]
    assert roles == ["system", "user"]
    assert _requests_rolled_up(store_client) == 1
    assert _metric(api, "joined_before_span") == 3


def test_content_after_the_span_is_written_onto_the_stored_event_once(api: Api, store_client: Client) -> None:
    _post_traces(api, content_span())
    assert _event(store_client)["input_text"] == ""

    _post_logs(api, logs_request(per_message_records()))

    event = _event(store_client)
    assert "Where is my order?" in event["input_text"] and event["output_text"] == "It ships today."
    assert orjson.loads(event["output_messages"])[0]["content"] == "It ships today."
    # The rollups count rows on insert: the call is still one request.
    assert _requests_rolled_up(store_client) == 1
    assert _metric(api, "joined_after_span") == 3


def test_prompt_before_and_completion_after_the_span(api: Api, store_client: Client) -> None:
    prompt, completion = per_message_records()[1], per_message_records()[2]
    _post_logs(api, logs_request([prompt]))
    _post_traces(api, content_span())
    assert _event(store_client)["output_text"] == ""
    _post_logs(api, logs_request([completion]))

    event = _event(store_client)
    assert event["input_text"] == "Where is my order?" and event["output_text"] == "It ships today."


def test_details_event_over_json_with_gzip_and_event_name_attribute(api: Api, store_client: Client) -> None:
    details = record(
        "gen_ai.client.inference.operation.details",
        attrs={
            "gen_ai.input.messages": orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Cancel my order"}]}]
            ).decode(),
            "gen_ai.output.messages": orjson.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Done."}], "finish_reason": "stop"}]
            ).decode(),
            "gen_ai.system_instructions": orjson.dumps([{"type": "text", "content": "Be kind."}]).decode(),
        },
        as_attribute=True,
    )
    as_dict = json_format.MessageToDict(logs_request([details]), use_integers_for_enums=True)
    for resource_logs in as_dict["resourceLogs"]:
        for scope in resource_logs["scopeLogs"]:
            for log in scope["logRecords"]:
                import base64

                log["traceId"] = base64.b64decode(log["traceId"]).hex()
                log["spanId"] = base64.b64decode(log["spanId"]).hex()
    response = api.http.post(
        "/v1/logs",
        content=gzip.compress(orjson.dumps(as_dict)),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 200 and response.json() == {}, response.text
    _post_traces(api, content_span())

    event = _event(store_client)
    assert event["input_text"].startswith("Be kind.") and "Cancel my order" in event["input_text"]
    assert event["output_text"] == "Done."


def test_content_on_the_span_wins_over_log_content(api: Api, store_client: Client) -> None:
    _post_logs(api, logs_request(per_message_records()))
    with_content = export(
        [
            span(
                SPAN_N,
                "chat gpt-4o-mini",
                chat_attrs(
                    **{
                        "gen_ai.input.messages": orjson.dumps([{"role": "user", "content": "span prompt"}]).decode(),
                        "gen_ai.output.messages": orjson.dumps(
                            [{"role": "assistant", "content": "span answer"}]
                        ).decode(),
                    }
                ),
                start=T_SPAN,
            )
        ]
    )
    _post_traces(api, with_content)
    event = _event(store_client)
    assert (event["input_text"], event["output_text"]) == ("span prompt", "span answer")


def test_content_of_another_app_is_not_joined(api: Api, store_client: Client) -> None:
    _post_logs(api, logs_request(per_message_records(), service_name="someone-else"))
    _post_traces(api, content_span())
    assert _event(store_client)["input_text"] == ""


def test_ordinary_logs_are_skipped_and_content_without_its_span_is_counted(api: Api, store_client: Client) -> None:
    plain = LogRecord(time_unix_nano=T_SPAN, body=AnyValue(string_value="GET /health 200"))
    orphan = record("gen_ai.user.message", {"content": "nobody answers"}, span_id=(99).to_bytes(8, "big"))
    answer = _post_logs(api, logs_request([plain, orphan]))
    assert answer.partial_success.rejected_log_records == 0
    assert _metric(api, "skipped") == 1 and _metric(api, "stored") == 1

    assert api.joiner.refresh_unjoined() == 0, "still within the join window"
    api.clock.now += timedelta(seconds=301)
    assert api.joiner.refresh_unjoined() == 1
    assert api.service.metrics.registry.get_sample_value("llmpulse_otlp_content_unjoined") == 1
    kept = store_client.query("SELECT event_id, input_messages FROM otlp_content").result_rows
    assert [(r[0], orjson.loads(r[1])[0]["content"]) for r in kept] == [
        (f"otel-{TRACE.hex()}-{(99).to_bytes(8, 'big').hex()}", "nobody answers")
    ]


def test_a_body_that_is_not_an_otlp_logs_request_is_400_and_kept(api: Api, store_client: Client) -> None:
    response = api.http.post("/v1/logs", content=b"\x0a\xff\xff", headers=PROTOBUF)
    assert response.status_code == 400
    assert store_client.query("SELECT count() FROM rejected_events").result_rows[0][0] == 1
