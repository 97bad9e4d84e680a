"""One instrumentation library per process: the real `openai` client traced by it, exported via OTLP/HTTP.

Usage::

    python -m tests.support.otel_driver LIBRARY --openai-url http://127.0.0.1:P/v1 \
        --otlp-url http://127.0.0.1:Q/v1/traces [--json-url http://127.0.0.1:R/v1/traces] [--dump]

LIBRARY is one of ``LIBRARIES``. Instrumentors patch the openai module globally and none of them un-patches
cleanly, which is why each runs in a process of its own. The scenarios (chat, streaming chat, tool call,
provider error) each run inside an application span of the driver's own, which is not an LLM span: the
receiver must skip it, not reject it.

Spans go out through the standard ``OTLPSpanExporter`` (protobuf). The SDK has no OTLP/JSON exporter, so with
``--json-url`` the same finished spans are also encoded with the SDK's own protobuf encoder, rendered with
``json_format`` the way the OTLP/JSON spec wants it (hex ids, integer enums, camelCase) and posted there.
The process prints one ``SCENARIO name=... trace_id=...`` line per scenario, then a ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

LIBRARIES = ("openai-v2", "openinference", "openllmetry")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
SYSTEM_PROMPT = "You are a helpful support agent."
USER_PROMPT = "How do I reset my password?"
REQUEST_MODEL = "gpt-4o-mini"


def _configure_content_capture(library: str, content: str) -> None:
    # Every library hides prompts and completions by default or sends them elsewhere (logs). content="span":
    # on the spans, as a user who turns capture on would; "events": openai-v2's content mode for log events
    # (one gen_ai.client.inference.operation.details event per call). With opentelemetry-util-genai >= 1.1
    # openai-v2 always follows the latest conventions, so the older per-message events are not emitted
    # (their shape is covered by tests/integration/test_otlp_logs.py).
    if library == "openai-v2":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = (
            "SPAN_ONLY" if content == "span" else "EVENT_ONLY"
        )
    elif library == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "true"


def _instrument(library: str, tracer_provider: Any, logger_provider: Any = None) -> None:
    if library == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    elif library == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor

        OpenInferenceInstrumentor().instrument(tracer_provider=tracer_provider)
    elif library == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor

        OpenLLMetryInstrumentor().instrument(tracer_provider=tracer_provider)
    else:
        raise SystemExit(f"unknown library {library!r}; one of {', '.join(LIBRARIES)}")


def _scenarios(client: Any) -> dict[str, Callable[[], None]]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT}]

    def chat() -> None:
        client.chat.completions.create(model=REQUEST_MODEL, messages=messages, temperature=0.2)

    def stream() -> None:
        chunks = client.chat.completions.create(
            model=REQUEST_MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        for _chunk in chunks:
            pass

    def tool_call() -> None:
        client.chat.completions.create(
            model=REQUEST_MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS
        )

    def error() -> None:
        import openai

        try:
            client.chat.completions.create(
                model=REQUEST_MODEL, messages=[{"role": "user", "content": "please fail now"}]
            )
        except openai.BadRequestError:
            return
        raise AssertionError("the fake provider should have refused this request")

    def rate_limited() -> None:
        import openai

        try:
            client.chat.completions.create(
                model=REQUEST_MODEL, messages=[{"role": "user", "content": "please rate limit me"}]
            )
        except openai.RateLimitError:
            return
        raise AssertionError("the fake provider should have rate-limited this request")

    return {"chat": chat, "stream": stream, "tool_call": tool_call, "error": error, "rate_limited": rate_limited}


def _hex_ids(node: Any) -> Any:
    """json_format renders bytes as base64; OTLP/JSON wants trace and span ids as hex."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64decode(value).hex()
            else:
                out[key] = _hex_ids(value)
        return out
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def request_to_otlp_json(request: Any) -> bytes:
    """An ExportTraceServiceRequest as OTLP/JSON: camelCase, integer enums, hex ids."""
    from google.protobuf import json_format

    as_dict = json_format.MessageToDict(request, use_integers_for_enums=True)
    return json.dumps(_hex_ids(as_dict)).encode()


def otlp_json(spans: Any) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return request_to_otlp_json(encode_spans(spans))


def _post_json(url: str, body: bytes) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=gzip.compress(body),
        method="POST",
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read() or b"{}")
        result["http_status"] = response.status
        return result


def _grpc_span_exporter(endpoint: str, headers: dict[str, str] | None) -> Any:
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

    return GrpcSpanExporter(
        endpoint=endpoint, insecure=True, compression=grpc.Compression.Gzip, headers=headers, timeout=30
    )


def _logger_provider(args: argparse.Namespace, resource: Any, headers: dict[str, str] | None, hold_ms: int) -> Any:
    """Content log events go over OTLP/gRPC with the spans, or to --logs-url over OTLP/HTTP."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    logger_provider = LoggerProvider(resource=resource)
    if args.grpc_endpoint:
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        log_exporter: Any = GrpcLogExporter(
            endpoint=args.grpc_endpoint, insecure=True, compression=grpc.Compression.Gzip, headers=headers, timeout=30
        )
    elif args.logs_url:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        log_exporter = OTLPLogExporter(
            endpoint=args.logs_url, compression=Compression.Gzip, headers=headers, timeout=30
        )
    else:
        raise SystemExit("--content events needs --grpc-endpoint or --logs-url")
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter, schedule_delay_millis=hold_ms))
    return logger_provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Trace real openai calls with one instrumentation library.")
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("--openai-url", required=True, help="base URL of an OpenAI-compatible server (…/v1)")
    parser.add_argument("--otlp-url", help="OTLP/HTTP traces endpoint (protobuf)")
    parser.add_argument("--json-url", help="also post the same spans as OTLP/JSON here")
    parser.add_argument("--app", default=None, help="service.name (default: otel-e2e-LIBRARY)")
    parser.add_argument("--dump", action="store_true", help="print the spans as OTLP/JSON to stdout")
    parser.add_argument("--grpc-endpoint", help="OTLP/gRPC receiver host:port: spans (and logs) go there")
    parser.add_argument("--logs-url", help="OTLP/HTTP logs endpoint (…/v1/logs) for content log events")
    parser.add_argument("--content", choices=("span", "events"), default="span")
    parser.add_argument(
        "--order",
        choices=("logs-first", "spans-first"),
        default="logs-first",
        help="with content in logs: which signal is exported first (each is held until the end, then flushed)",
    )
    parser.add_argument("--api-key", help="sent as the authorization header / metadata")
    parser.add_argument("--only", help="comma-separated scenarios to run (default: all)")
    args = parser.parse_args(argv)
    _configure_content_capture(args.library, args.content)

    import openai
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource.create(
        {
            "service.name": args.app or f"otel-e2e-{args.library}",
            "deployment.environment.name": "staging",
            "llmpulse.feature": "password-help",
        }
    )
    provider = TracerProvider(resource=resource)
    exporter = None
    headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else None
    # With content in logs, both signals are held (no scheduled export) and flushed in the order asked for.
    hold_ms = 600_000 if args.content != "span" else 200
    if args.otlp_url:
        exporter = OTLPSpanExporter(endpoint=args.otlp_url, compression=Compression.Gzip, timeout=30, headers=headers)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=hold_ms))
    if args.grpc_endpoint:
        provider.add_span_processor(
            BatchSpanProcessor(_grpc_span_exporter(args.grpc_endpoint, headers), schedule_delay_millis=hold_ms)
        )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    logger_provider = _logger_provider(args, resource, headers, hold_ms) if args.content != "span" else None
    _instrument(args.library, provider, logger_provider)

    client = openai.OpenAI(base_url=args.openai_url, api_key="sk-fake", max_retries=0, timeout=30)
    tracer = trace.get_tracer("llmpulse.otel_driver")
    only = set(args.only.split(",")) if args.only else None
    for name, run in _scenarios(client).items():
        if only is not None and name not in only:
            continue
        with tracer.start_as_current_span(f"handle {name}") as span:
            run()
            print(f"SCENARIO name={name} trace_id={span.get_span_context().trace_id:032x}", flush=True)

    logs_flushed = None
    if logger_provider is not None and args.order == "logs-first":
        logs_flushed = logger_provider.force_flush(30_000)
    exported_ok = provider.force_flush(30_000)
    if logger_provider is not None and args.order == "spans-first":
        logs_flushed = logger_provider.force_flush(30_000)
    spans = memory.get_finished_spans()
    result: dict[str, Any] = {"spans": len(spans), "proto_flushed": exported_ok, "logs_flushed": logs_flushed}
    if args.json_url:
        result["json_response"] = _post_json(args.json_url, otlp_json(spans))
    if args.dump:
        print(json.dumps(json.loads(otlp_json(spans)), indent=1))
    provider.shutdown()
    if logger_provider is not None:
        logger_provider.shutdown()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
