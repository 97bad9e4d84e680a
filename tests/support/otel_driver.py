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


def _configure_content_capture(library: str) -> None:
    # Every library hides prompts and completions by default or sends them elsewhere (logs); the e2e test
    # wants them on the spans, as a user who turns capture on would.
    if library == "openai-v2":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    elif library == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "true"


def _instrument(library: str, tracer_provider: Any) -> None:
    if library == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
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

    return {"chat": chat, "stream": stream, "tool_call": tool_call, "error": error}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Trace real openai calls with one instrumentation library.")
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("--openai-url", required=True, help="base URL of an OpenAI-compatible server (…/v1)")
    parser.add_argument("--otlp-url", help="OTLP/HTTP traces endpoint (protobuf)")
    parser.add_argument("--json-url", help="also post the same spans as OTLP/JSON here")
    parser.add_argument("--app", default=None, help="service.name (default: otel-e2e-LIBRARY)")
    parser.add_argument("--dump", action="store_true", help="print the spans as OTLP/JSON to stdout")
    args = parser.parse_args(argv)
    _configure_content_capture(args.library)

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
    if args.otlp_url:
        exporter = OTLPSpanExporter(endpoint=args.otlp_url, compression=Compression.Gzip, timeout=30)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    _instrument(args.library, provider)

    client = openai.OpenAI(base_url=args.openai_url, api_key="sk-fake", max_retries=0, timeout=30)
    tracer = trace.get_tracer("llmpulse.otel_driver")
    for name, run in _scenarios(client).items():
        with tracer.start_as_current_span(f"handle {name}") as span:
            run()
            print(f"SCENARIO name={name} trace_id={span.get_span_context().trace_id:032x}", flush=True)

    exported_ok = provider.force_flush(30_000)
    spans = memory.get_finished_spans()
    result: dict[str, Any] = {"spans": len(spans), "proto_flushed": exported_ok}
    if args.json_url:
        result["json_response"] = _post_json(args.json_url, otlp_json(spans))
    if args.dump:
        print(json.dumps(json.loads(otlp_json(spans)), indent=1))
    provider.shutdown()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
