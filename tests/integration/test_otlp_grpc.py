"""The OTLP/gRPC receiver on the real embedded ClickHouse, called as exporters call it: TraceService/Export and
LogsService/Export with gzip, API keys in the `authorization` metadata, and the status codes of the OTLP spec."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
from clickhouse_connect.driver.client import Client
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from collector.auth import Scope
from collector.inserter import BulkInserter
from collector.keys import ClickHouseKeyStore, KeyAuthenticator, create_key
from collector.metrics import IngestMetrics
from collector.otlp.content import ClickHouseContentStore, ContentJoiner
from collector.otlp.grpc import GrpcSettings, OtlpGrpcReceiver
from collector.pricing import PriceCatalog
from collector.service import IngestService
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator
from tests.integration.test_otlp_http import mixed_request
from tests.integration.test_otlp_logs import EVENT_ID, content_span, logs_request, per_message_records
from tests.support.serve_process import free_port


@dataclass
class Receiver:
    channel: grpc.Channel
    traces: TraceServiceStub
    logs: LogsServiceStub
    keys: dict[str, str]
    service: IngestService


@contextmanager
def running_receiver(
    store_client: Client, inserter_delay_s: float = 0.02, max_pending_rows: int = 400_000
) -> Iterator[Receiver]:
    metrics = IngestMetrics()
    validator = EventValidator(prices=PriceCatalog())
    inserter = BulkInserter(
        ClickHouseEventStore(store_client),
        max_delay_s=inserter_delay_s,
        max_pending_rows=max_pending_rows,
        metrics=metrics,
    )
    service = IngestService(validator=validator, inserter=inserter, metrics=metrics)
    key_store = ClickHouseKeyStore(store_client)
    keys = {
        "ingest": create_key(key_store, "ingest", Scope.INGEST)[1],
        "read": create_key(key_store, "read", Scope.READ)[1],
        "other-app": create_key(key_store, "other-app", Scope.INGEST, apps=["somewhere-else"])[1],
    }
    joiner = ContentJoiner(
        ClickHouseContentStore(store_client), validator, window=timedelta(seconds=300), registry=metrics.registry
    )
    grpc_receiver = OtlpGrpcReceiver(
        service,
        authenticator=KeyAuthenticator(key_store),
        joiner=joiner,
        settings=GrpcSettings(host="127.0.0.1", port=free_port(), max_message_bytes=1024 * 1024, workers=4),
    )
    service.start()
    grpc_receiver.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_receiver.port}")
    try:
        yield Receiver(channel, TraceServiceStub(channel), LogsServiceStub(channel), keys, service)
    finally:
        channel.close()
        grpc_receiver.stop()
        service.stop()


@pytest.fixture()
def receiver(store_client: Client) -> Iterator[Receiver]:
    with running_receiver(store_client) as running:
        yield running


def _auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def test_traces_are_stored_with_partial_success_over_gzip(receiver: Receiver, store_client: Client) -> None:
    answer = receiver.traces.Export(
        mixed_request(), metadata=_auth(receiver.keys["ingest"]), compression=grpc.Compression.Gzip, timeout=30
    )
    assert answer.partial_success.rejected_spans == 2
    assert "2 of 6 spans rejected" in answer.partial_success.error_message
    assert store_client.query("SELECT count() FROM events").result_rows[0][0] == 2
    assert store_client.query("SELECT count() FROM rejected_events").result_rows[0][0] == 2


def test_logs_then_spans_over_grpc_store_the_texts(receiver: Receiver, store_client: Client) -> None:
    key = _auth(receiver.keys["ingest"])
    logs_answer = receiver.logs.Export(logs_request(per_message_records()), metadata=key, timeout=30)
    assert logs_answer.partial_success.rejected_log_records == 0
    receiver.traces.Export(content_span(), metadata=key, timeout=30)
    rows = store_client.query("SELECT event_id, input_text, output_text FROM events").result_rows
    assert len(rows) == 1
    event_id, input_text, output_text = rows[0]
    assert event_id == EVENT_ID and "Where is my order?" in input_text and output_text == "It ships today."


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED),
        ("wrong", grpc.StatusCode.UNAUTHENTICATED),
        ("read", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_keys_are_checked(receiver: Receiver, store_client: Client, key: str | None, code: grpc.StatusCode) -> None:
    metadata = [] if key is None else _auth(receiver.keys.get(key, "llmpulse_not_a_key"))
    for call, request in ((receiver.traces.Export, mixed_request()), (receiver.logs.Export, logs_request([]))):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, metadata=metadata, timeout=30)
        assert raised.value.code() == code
        assert "llmpulse_" not in (raised.value.details() or ""), "the key is never echoed"
    assert store_client.query("SELECT count() FROM events").result_rows[0][0] == 0


def test_a_key_for_another_app_gets_its_spans_rejected(receiver: Receiver, store_client: Client) -> None:
    answer = receiver.traces.Export(mixed_request(), metadata=_auth(receiver.keys["other-app"]), timeout=30)
    assert answer.partial_success.rejected_spans == 4  # the two broken spans and the two the key may not write
    assert store_client.query("SELECT count() FROM events").result_rows[0][0] == 0
    logs_answer = receiver.logs.Export(
        logs_request(per_message_records()), metadata=_auth(receiver.keys["other-app"]), timeout=30
    )
    assert logs_answer.partial_success.rejected_log_records == 3
    assert "may not write" in logs_answer.partial_success.error_message


def test_an_undecodable_request_is_invalid_argument_and_kept(receiver: Receiver, store_client: Client) -> None:
    raw_export = receiver.channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    with pytest.raises(grpc.RpcError) as raised:
        raw_export(b"\x0a\xff\xff", metadata=_auth(receiver.keys["ingest"]), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in (raised.value.details() or "")
    assert store_client.query("SELECT count() FROM rejected_events").result_rows[0][0] == 1


def test_an_overloaded_writer_answers_resource_exhausted_with_a_retry_hint(store_client: Client) -> None:
    # The writer holds a batch for 3 s and takes no more than one row waiting: the second export is refused.
    with running_receiver(store_client, inserter_delay_s=3, max_pending_rows=1) as overloaded:
        key = _auth(overloaded.keys["ingest"])
        first = overloaded.traces.Export.future(content_span(), metadata=key, timeout=60)
        registry = overloaded.service.metrics.registry
        deadline = time.monotonic() + 30
        while not registry.get_sample_value("llmpulse_events_accepted_total", {"source": "otlp"}):
            assert time.monotonic() < deadline, "the first export never reached the writer"
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as raised:
            overloaded.traces.Export(mixed_request(), metadata=key, timeout=60)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(raised.value.trailing_metadata() or ())
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds >= 1
        overloaded.service.inserter.flush()
        assert first.result(timeout=60).partial_success.rejected_spans == 0


def test_a_message_over_the_limit_is_refused(receiver: Receiver) -> None:
    from tests.integration.test_otlp_http import chat_attrs, export, span

    huge = export([span(1, "chat", chat_attrs(**{"gen_ai.prompt": "x" * (2 * 1024 * 1024)}))])
    with pytest.raises(grpc.RpcError) as raised:
        receiver.traces.Export(huge, metadata=_auth(receiver.keys["ingest"]), timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
