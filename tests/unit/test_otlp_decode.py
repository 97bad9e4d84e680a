"""decode_otlp_proto / decode_otlp_json: the pure bytes → RawItems functions the HTTP receiver and Kafka share."""

from __future__ import annotations

import base64
import gzip
import re
from dataclasses import replace
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collector.kafka.decoders import JSON_ENCODING, JsonEventDecoder, TopicDecoders, UndecodableMessage
from collector.otlp import OtlpPayloadError, decode_otlp_json, decode_otlp_proto
from collector.otlp.decode import spans_from_json
from collector.otlp.kafka import otlp_decoders
from collector.validation import PayloadError, RawItem
from tests.support.otel_driver import request_to_otlp_json

T0 = 1_795_000_000_000_000_000
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _request() -> ExportTraceServiceRequest:
    chat = Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
        parent_span_id=bytes.fromhex("eee19b7ec3c1b173"),
        name="chat gpt-4o",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 900_000_000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="rate limited"),
        attributes=[
            _kv("gen_ai.operation.name", AnyValue(string_value="chat")),
            _kv("gen_ai.request.model", AnyValue(string_value="gpt-4o")),
            _kv("gen_ai.usage.input_tokens", AnyValue(int_value=12)),
            _kv("gen_ai.response.time_to_first_chunk", AnyValue(double_value=0.25)),
            _kv(
                "gen_ai.response.finish_reasons",
                AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="length")])),
            ),
            _kv(
                "gen_ai.input.messages",
                AnyValue(
                    array_value=ArrayValue(
                        values=[
                            AnyValue(
                                kvlist_value=KeyValueList(
                                    values=[
                                        _kv("role", AnyValue(string_value="user")),
                                        _kv(
                                            "parts",
                                            AnyValue(
                                                array_value=ArrayValue(
                                                    values=[
                                                        AnyValue(
                                                            kvlist_value=KeyValueList(
                                                                values=[
                                                                    _kv("type", AnyValue(string_value="text")),
                                                                    _kv("content", AnyValue(string_value="hi")),
                                                                ]
                                                            )
                                                        )
                                                    ]
                                                )
                                            ),
                                        ),
                                    ]
                                )
                            )
                        ]
                    )
                ),
            ),
            _kv("app.blob", AnyValue(bytes_value=b"\x00\x01")),
            _kv("error.type", AnyValue(string_value="RateLimitError")),
        ],
    )
    http = Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("eee19b7ec3c1b173"),
        name="GET /",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1,
        attributes=[_kv("http.request.method", AnyValue(string_value="GET"))],
    )
    broken = Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("eee19b7ec3c1b175"),
        name="chat",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1,
        attributes=[_kv("gen_ai.operation.name", AnyValue(string_value="chat"))],
    )
    resource = Resource(attributes=[_kv("service.name", AnyValue(string_value="svc"))])
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[chat, http, broken])])]
    )


def _values(items: list[RawItem]) -> list[tuple[Any, ...]]:
    return [(i.index, i.value, i.decode_error, i.raw) for i in items]


def test_protobuf_and_json_of_one_request_decode_alike() -> None:
    request = _request()
    proto = decode_otlp_proto(request.SerializeToString())
    json = decode_otlp_json(request_to_otlp_json(request))

    assert (proto.spans, proto.skipped, len(proto)) == (3, 1, 2)
    assert _values(proto.items) == _values(json.items)
    chat = proto.items[0].value
    assert chat["event_id"] == f"otel-{TRACE.hex()}-eee19b7ec3c1b174"
    assert chat["parent_span_id"] == "eee19b7ec3c1b173"
    assert chat["input"] == [{"role": "user", "content": "hi"}]
    assert (chat["status"], chat["error_type"], chat["finish_reason"], chat["ttft_ms"]) == (
        "error",
        "RateLimitError",
        "length",
        250.0,
    )
    rejected = proto.items[1]
    assert rejected.value is None and "no model" in (rejected.decode_error or "")
    assert orjson.loads(rejected.raw or b"")["spanId"] == "eee19b7ec3c1b175"
    assert list(proto) == proto.items  # plugs in wherever an iterable of RawItems is expected


def test_json_accepts_what_real_senders_send() -> None:
    document = {
        "resource_spans": [
            {  # proto field names instead of camelCase
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "instrumentationLibrarySpans": [
                    {  # pre-1.0 OTLP
                        "instrumentationLibrary": {"name": "old-lib"},
                        "spans": [
                            {
                                "traceId": base64.b64encode(TRACE).decode(),  # protobuf JSON mapping's base64
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "chat",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": T0 + 5_000_000,
                                "status": {"code": "STATUS_CODE_OK"},
                                "droppedAttributesCount": 0,
                                "attributes": [
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"int_value": 3}},
                                    {"key": "weird.double", "value": {"doubleValue": "NaN"}},
                                    {
                                        "key": "gen_ai.tool.definitions",
                                        "value": {
                                            "kvlistValue": {"values": [{"key": "name", "value": {"stringValue": "f"}}]}
                                        },
                                    },
                                    {"key": "empty", "value": {}},
                                    {"key": "blob", "value": {"bytesValue": "AAE="}},
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    decoded = decode_otlp_json(orjson.dumps(document))
    (item,) = decoded.items
    assert item.decode_error is None
    event = item.value
    assert event["event_id"] == f"otel-{TRACE.hex()}-eee19b7ec3c1b174"
    assert event["usage"] == {"input_tokens": 7, "output_tokens": 3}
    assert event["latency_ms"] == 5.0 and event["metadata"]["instrumentation"] == "old-lib"
    (span,) = spans_from_json(orjson.dumps(document))
    assert span.kind == 3 and span.status_code == 1 and span.attributes["empty"] is None
    assert span.attributes["gen_ai.tool.definitions"] == {"name": "f"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"[1, 2]", "the request must be an object"),
        (b'{"resourceSpans": {}}', "resourceSpans must be an array"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [1]}]}]}', "spans[0]: a span must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}', "startTimeUnixNano"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SIDEWAYS"}]}]}]}', "kind must be an enum"),
        (
            orjson.dumps(
                {
                    "resourceSpans": [
                        {"scopeSpans": [{"spans": [{"attributes": [{"key": "n", "value": {"intValue": "x"}}]}]}]}
                    ]
                }
            ),
            "intValue",
        ),
    ],
)
def test_json_that_is_not_an_export_request_is_a_payload_error(body: bytes, message: str) -> None:
    with pytest.raises(OtlpPayloadError, match=re.escape(message)):
        decode_otlp_json(body)


def test_protobuf_errors_gzip_and_empty_requests() -> None:
    data = _request().SerializeToString()
    with pytest.raises(OtlpPayloadError, match="not a valid OTLP"):
        decode_otlp_proto(data[:-7])
    with pytest.raises(PayloadError):  # a JSON body sent as protobuf
        decode_otlp_proto(request_to_otlp_json(_request()))
    # Kafka messages may carry gzipped payloads; the magic number is never valid OTLP protobuf.
    assert len(decode_otlp_proto(gzip.compress(data))) == 2
    assert len(decode_otlp_json(gzip.compress(request_to_otlp_json(_request())))) == 2
    with pytest.raises(PayloadError, match="exceeds"):
        decode_otlp_proto(gzip.compress(data), max_bytes=100)
    empty = decode_otlp_proto(b"")
    assert (empty.spans, len(empty)) == (0, 0)
    assert decode_otlp_json(b"{}").spans == 0


def test_kafka_topics_can_carry_otlp_with_the_collector_encoding_names() -> None:
    skipped: list[int] = []
    decoders = TopicDecoders(
        {JSON_ENCODING: JsonEventDecoder(), **otlp_decoders(on_skipped=skipped.append)},
        topic_encodings={"otel-spans": "otlp_proto", "otel-json": "otlp_json"},
    )
    # Items of later messages in a Kafka batch are numbered on from the earlier ones.
    items = decoders.for_topic("otel-spans").decode(_request().SerializeToString(), first_index=5)
    assert [i.index for i in items] == [5, 7] and skipped == [1]
    again = decoders.for_topic("otel-json").decode(request_to_otlp_json(_request()), first_index=0)
    assert _values(again) == _values([replace(i, index=i.index - 5) for i in items])
    with pytest.raises(UndecodableMessage, match="not a valid OTLP"):
        decoders.for_topic("otel-spans").decode(b"\x0a\xff", first_index=0)
