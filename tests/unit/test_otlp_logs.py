"""OTLP log records → GenAI content for their span: every shape the instrumentations emit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from collector.otlp.decode import OtlpPayloadError
from collector.otlp.logs import (
    ContentRecord,
    RawLog,
    content_of,
    decode_logs_json,
    decode_logs_proto,
    merge_content,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "00f067aa0ba902b7"
RESOURCE = {"service.name": "support-bot"}


def raw(name: str, body: Any = None, attrs: dict[str, Any] | None = None, *, t: int = 1, span: str = SPAN) -> RawLog:
    return RawLog(TRACE, span, t, name, body, attrs or {}, RESOURCE)


def content(log: RawLog, seq: int = 1) -> ContentRecord:
    record = content_of(log, seq=seq, default_app="unknown_service")
    assert record is not None
    return record


def test_openai_v2_per_message_events_make_the_conversation() -> None:
    records = [
        content(raw("gen_ai.system.message", {"content": "Be terse."}, t=1), 1),
        content(raw("gen_ai.user.message", {"content": "Hi"}, t=2), 2),
        content(
            raw(
                "gen_ai.assistant.message",
                {"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                t=3,
            ),
            3,
        ),
        content(raw("gen_ai.tool.message", {"content": "42", "id": "c1"}, t=4), 4),
        content(
            raw(
                "gen_ai.choice",
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "42."}},
                t=9,
            ),
            5,
        ),
    ]
    assert {r.event_id for r in records} == {f"otel-{TRACE}-{SPAN}"}
    assert {r.app for r in records} == {"support-bot"}
    inputs, outputs = merge_content(reversed(records))  # arrival order does not matter, emission order does
    assert inputs is not None and outputs is not None
    assert [m["role"] for m in inputs] == ["system", "user", "assistant", "tool"]
    assert inputs[2]["content"][0] == {"type": "tool_call", "id": "c1", "name": "f", "arguments": {}}
    assert inputs[3]["content"][0]["type"] == "tool_call_response"
    assert outputs == [{"role": "assistant", "content": "42.", "finish_reason": "stop"}]


def test_details_event_as_attributes_or_as_body() -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Q"}]}]
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": "A"}], "finish_reason": "stop"}]
    as_json = content(
        raw(
            "gen_ai.client.inference.operation.details",
            None,
            {
                "gen_ai.input.messages": orjson.dumps(messages).decode(),
                "gen_ai.output.messages": orjson.dumps(answer).decode(),
                "gen_ai.system_instructions": '[{"type": "text", "content": "S"}]',
            },
        )
    )
    as_body = content(
        raw(
            "gen_ai.client.inference.operation.details",
            {"gen_ai.input.messages": messages, "gen_ai.output.messages": answer, "gen_ai.system_instructions": "S"},
        )
    )
    for record in (as_json, as_body):
        assert record.inputs == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
        assert record.outputs == [{"role": "assistant", "content": "A", "finish_reason": "stop"}]


def test_a_details_event_wins_over_per_message_events() -> None:
    details = content(
        raw(
            "gen_ai.client.inference.operation.details",
            None,
            {"gen_ai.input.messages": '[{"role":"user","content":"full"}]'},
        )
    )
    piece = content(raw("gen_ai.user.message", {"content": "piece"}))
    inputs, _ = merge_content([piece, details])
    assert inputs == [{"role": "user", "content": "full"}]


@pytest.mark.parametrize(
    "log",
    [
        raw("gen_ai.user.message", {"content": "x"}, span=""),  # no span to join
        raw("http.request", {"content": "x"}),  # not GenAI content
        raw("", "plain log line"),
        raw("gen_ai.choice", {"index": 0}),  # content capture off: nothing to store
    ],
)
def test_records_without_content_or_span_are_skipped(log: RawLog) -> None:
    assert content_of(log, seq=1, default_app="a") is None


def test_retried_records_get_the_same_content_id() -> None:
    first = content(raw("gen_ai.user.message", {"content": "x"}), 1)
    again = content(raw("gen_ai.user.message", {"content": "x"}), 7)
    other = content(raw("gen_ai.user.message", {"content": "y"}), 1)
    assert first.content_id == again.content_id != other.content_id


def _json_request(records: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
                    "scopeLogs": [{"scope": {"name": "x"}, "logRecords": records}],
                }
            ]
        }
    )


def test_json_and_protobuf_decode_to_the_same_records() -> None:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    record = {
        "timeUnixNano": "1795000000000000000",
        "traceId": TRACE,
        "spanId": SPAN,
        "eventName": "gen_ai.user.message",
        "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "hello"}}]}},
    }
    from_json = decode_logs_json(_json_request([record]))
    proto_record = dict(record)
    import base64

    proto_record["traceId"] = base64.b64encode(bytes.fromhex(TRACE)).decode()
    proto_record["spanId"] = base64.b64encode(bytes.fromhex(SPAN)).decode()
    request = json_format.ParseDict(orjson.loads(_json_request([proto_record])), ExportLogsServiceRequest())
    from_proto = decode_logs_proto(request.SerializeToString())
    assert from_json.records == from_proto.records
    (decoded,) = from_json.records
    assert (decoded.app, decoded.inputs) == ("bot", [{"role": "user", "content": "hello"}])


def test_a_broken_request_says_where() -> None:
    with pytest.raises(OtlpPayloadError, match=r"logRecords\[0\].*timeUnixNano"):
        decode_logs_json(_json_request([{"timeUnixNano": "soon", "traceId": TRACE, "spanId": SPAN}]))
    with pytest.raises(OtlpPayloadError, match="ExportLogsServiceRequest"):
        decode_logs_proto(b"\x0a\xff\xff")
