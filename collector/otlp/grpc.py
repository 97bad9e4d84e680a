"""The OTLP/gRPC receiver: TraceService/Export and LogsService/Export, beside the HTTP API in `llmpulse serve`.

The same decoding, mapping, auth, content join and partial-success answers as OTLP/HTTP
(collector/api/routers/otlp.py, otlp_logs.py), with gRPC's status codes as the OTLP spec wants them:
- OK with `partial_success` (rejected_spans / rejected_log_records and a message) once everything is stored;
- INVALID_ARGUMENT: the message is not an export request (kept whole in rejected_events), not retryable;
- UNAUTHENTICATED / PERMISSION_DENIED: no or unknown key / a key without the ingest scope (the
  `authorization` metadata, as OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer ... sends it);
- RESOURCE_EXHAUSTED with RetryInfo (the writer's queue is full) and UNAVAILABLE (the store did not take the
  batch): nothing was stored, the exporter retries, and deterministic event ids collapse a partial retry.
gzip is gRPC's own message compression (grpc-encoding), handled by the server. Requests reach the handlers as
bytes so that a payload that does not decode is answered and kept like over HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collector.auth import Authenticator, AuthError, Principal, Scope
from collector.inserter import InserterOverloaded, InserterStopped
from collector.otlp.content import ContentJoiner
from collector.otlp.decode import decode_otlp_proto
from collector.otlp.export import export_logs, finish_trace_export, start_trace_export
from collector.otlp.logs import decode_logs_proto
from collector.otlp.mapping import OtlpOptions
from collector.rows import Rejection
from collector.service import IngestService
from collector.validation import PayloadError, PayloadTooLarge

log = logging.getLogger(__name__)

SOURCE = "otlp"
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
# How long a handler waits for the writer to store its batch before answering UNAVAILABLE.
_WRITE_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    host: str = "127.0.0.1"
    port: int = 4317
    max_message_bytes: int = 64 * 1024 * 1024
    workers: int = 16


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


def _retry_metadata(code: grpc.StatusCode, message: str, seconds: int) -> tuple[tuple[str, bytes], ...]:
    info = RetryInfo(retry_delay=Duration(seconds=seconds))
    detail = AnyProto()
    detail.Pack(info)
    status = Status(code=code.value[0], message=message, details=[detail])
    # The first is what the Python SDK reads, the second the standard rich-status trailer (Go, Java, Collector).
    return (
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
        ("grpc-status-details-bin", status.SerializeToString()),
    )


class OtlpGrpcReceiver:
    """A Component (start/stop with the app's lifespan): a grpcio server on its own thread pool."""

    def __init__(
        self,
        service: IngestService,
        *,
        authenticator: Authenticator,
        options: OtlpOptions | None = None,
        joiner: ContentJoiner | None = None,
        settings: GrpcSettings | None = None,
    ) -> None:
        self._service = service
        self._authenticator = authenticator
        self._options = options or OtlpOptions()
        self._joiner = joiner
        self._settings = settings or GrpcSettings()
        self._server: grpc.Server | None = None
        self.port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        s = self._settings
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=s.workers, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ],
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    TRACE_SERVICE,
                    {"Export": self._handler(self._export_traces, ExportTraceServiceResponse.SerializeToString)},
                ),
                grpc.method_handlers_generic_handler(
                    LOGS_SERVICE,
                    {"Export": self._handler(self._export_logs, ExportLogsServiceResponse.SerializeToString)},
                ),
            )
        )
        address = f"{s.host}:{s.port}" if ":" not in s.host else f"[{s.host}]:{s.port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from None
        if port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {address} (in use? LLMPULSE_OTLP_GRPC_PORT)")
        server.start()
        self._server = server
        self.port = port
        log.info("OTLP/gRPC receiver listening on %s:%d", s.host, port)

    def stop(self) -> None:
        if self._server is not None:
            # In-flight exports finish (their batches are stored) before the writer stops after us.
            self._server.stop(grace=10).wait(15)
            self._server = None

    # -- handlers ------------------------------------------------------------------------------------------

    def _handler(
        self, export: Callable[[bytes, Principal, str], Any], serialize: Callable[[Any], bytes]
    ) -> grpc.RpcMethodHandler:
        def handle(request: bytes, context: grpc.ServicerContext) -> Any:
            request_id = uuid.uuid4().hex
            try:
                principal = self._authenticate(context)
                return export(request, principal, request_id)
            except _Abort as exc:
                if exc.retry_after_s is not None:
                    context.set_trailing_metadata(_retry_metadata(exc.code, exc.message, exc.retry_after_s))
                context.abort(exc.code, exc.message)

        # Identity deserializer: the bytes are decoded by the same functions as OTLP/HTTP's protobuf.
        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=lambda data: data, response_serializer=serialize
        )

    def _authenticate(self, context: grpc.ServicerContext) -> Principal:
        authorization = next(
            (str(value) for key, value in context.invocation_metadata() if key.lower() == "authorization"), None
        )
        try:
            return self._authenticator.authenticate(authorization, Scope.INGEST)
        except AuthError as exc:
            code = {
                401: grpc.StatusCode.UNAUTHENTICATED,
                403: grpc.StatusCode.PERMISSION_DENIED,
            }.get(exc.status, grpc.StatusCode.UNAVAILABLE)
            raise _Abort(code, exc.message) from None

    def _reject_whole(self, data: bytes, reason: str, request_id: str) -> None:
        with contextlib.suppress(InserterOverloaded, InserterStopped):
            self._service.reject_whole(
                Rejection(index=-1, reason=reason, payload=data, source=SOURCE, source_ref=f"grpc request {request_id}")
            ).result(_WRITE_TIMEOUT_S)

    def _export_traces(self, data: bytes, principal: Principal, request_id: str) -> ExportTraceServiceResponse:
        try:
            decoded = decode_otlp_proto(data, self._options, max_bytes=self._settings.max_message_bytes)
        except PayloadTooLarge as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except PayloadError as exc:
            self._reject_whole(data, str(exc), request_id)
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        try:
            export = start_trace_export(
                self._service,
                decoded,
                joiner=self._joiner,
                principal=principal,
                source=SOURCE,
                source_ref=f"grpc request {request_id}",
            )
        except InserterOverloaded as exc:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"ingest is overloaded, retry later: {exc}", 1) from None
        except InserterStopped as exc:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(exc), 5) from None
        try:
            export.outcome.written.result(_WRITE_TIMEOUT_S)
        except Exception as exc:
            raise _Abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the store did not accept the batch, nothing from this request was stored: {exc}",
                5,
            ) from None
        finish_trace_export(export, self._joiner, principal)
        response = ExportTraceServiceResponse()
        if export.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=export.rejected, error_message=export.partial_message())
            )
        return response

    def _export_logs(self, data: bytes, principal: Principal, request_id: str) -> ExportLogsServiceResponse:
        if self._joiner is None:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "this server does not store OTLP log content")
        try:
            decoded = decode_logs_proto(
                data, default_app=self._options.default_app, max_bytes=self._settings.max_message_bytes
            )
        except PayloadTooLarge as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except PayloadError as exc:
            self._reject_whole(data, str(exc), request_id)
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        try:
            export = export_logs(self._joiner, decoded, principal=principal)
        except Exception as exc:
            raise _Abort(
                grpc.StatusCode.UNAVAILABLE, f"the store did not accept the log records, retry later: {exc}", 5
            ) from None
        response = ExportLogsServiceResponse()
        if export.rejected:
            response.partial_success.CopyFrom(
                ExportLogsPartialSuccess(rejected_log_records=export.rejected, error_message=export.partial_message())
            )
        return response
