"""OTLP ingest throughput (POST /v1/traces) beside native-event ingest (POST /v1/events) of the same calls.

    .venv/bin/python bench/ingest_otlp.py [--calls 50000] [--batch 512] [--clients 2]

The workload is simulated traffic (`llmpulse.simulate`); each call is sent once as a contract-v1 event
(NDJSON) and once as the OTLP span a GenAI-semconv instrumentation would export for it (attributes, input and
output messages as JSON strings, resource with service.name), in OTLP/protobuf and in OTLP/JSON. Requests
carry `--batch` calls each, 512 by default — what the OTel SDK's BatchSpanProcessor sends at most.

Every path runs against a fresh `llmpulse serve` process on its own embedded store (chDB allows one data
path per process), is warmed up first, and is timed from the first request to the last response, which the
API sends only once the rows are durable; the stored events are counted afterwards. A second
table times the per-item CPU work in this process (decode + map + validate + price, no I/O).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue  # noqa: E402
from opentelemetry.proto.resource.v1.resource_pb2 import Resource  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status  # noqa: E402

from collector.otlp import decode_otlp_json, decode_otlp_proto  # noqa: E402
from collector.pricing import PriceCatalog  # noqa: E402
from collector.validation import EventValidator, iter_ndjson  # noqa: E402
from llmpulse.simulate import SimulationConfig, generate  # noqa: E402
from tests.support.serve_process import post_concurrently, running_serve  # noqa: E402
from tests.support.store_probe import probe  # noqa: E402

NDJSON = {"content-type": "application/x-ndjson"}
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def simulated_calls(n: int) -> list[dict[str, Any]]:
    config = SimulationConfig(
        start=datetime(2026, 11, 1, tzinfo=UTC),
        duration=timedelta(days=3),
        seed=11,
        clean=True,
        rate_per_minute=max(10.0, n / (3 * 1440) * 1.05),
    )
    calls = []
    for event in generate(config):
        calls.append(event)
        if len(calls) == n:
            break
    return calls


def _messages(value: Any, role: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [{"role": role, "content": value}]
    return orjson.dumps(
        [{"role": m["role"], "parts": [{"type": "text", "content": m.get("content") or ""}]} for m in value]
    ).decode()


def span_attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The attributes an OTel GenAI instrumentation (latest semconv, content capture on) sets for this call."""
    usage = event.get("usage") or {}
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": event["operation"],
        "gen_ai.provider.name": event.get("provider"),
        "gen_ai.request.model": event["model"],
        "gen_ai.response.model": event.get("response_model"),
        "gen_ai.usage.input_tokens": usage.get("input_tokens"),
        "gen_ai.usage.output_tokens": usage.get("output_tokens"),
        "gen_ai.usage.cache_read.input_tokens": usage.get("cache_read_input_tokens") or None,
        "gen_ai.usage.cache_creation.input_tokens": usage.get("cache_creation_input_tokens") or None,
        "gen_ai.usage.reasoning.output_tokens": usage.get("reasoning_output_tokens") or None,
        "gen_ai.response.finish_reasons": [event["finish_reason"]] if event.get("finish_reason") else None,
        "gen_ai.response.time_to_first_chunk": event["ttft_ms"] / 1000 if event.get("ttft_ms") else None,
        "gen_ai.conversation.id": event.get("session_id"),
        "user.id": event.get("user_id"),
        "llmpulse.feature": event.get("feature"),
        "gen_ai.prompt.version": event.get("prompt_version"),
        "error.type": event.get("error_type"),
        "gen_ai.tool.name": (event.get("metadata") or {}).get("tool"),
        "gen_ai.input.messages": _messages(event.get("input"), "user"),
        "gen_ai.output.messages": _messages(event.get("output"), "assistant"),
    }
    return {k: v for k, v in attrs.items() if v is not None}


def _start_ns(event: dict[str, Any]) -> int:
    start = datetime.fromisoformat(event["start_time"].replace("Z", "+00:00"))
    return int(start.timestamp() * 1_000_000) * 1000


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_any(v) for v in value]))
    return AnyValue(string_value=str(value))


def _json_any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_json_any(v) for v in value]}}
    return {"stringValue": str(value)}


def _groups(batch: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in batch:
        groups.setdefault((event["app"], event.get("environment", "prod")), []).append(event)
    return groups


def otlp_proto_body(batch: list[dict[str, Any]]) -> bytes:
    request = ExportTraceServiceRequest()
    for (app, env), events in _groups(batch).items():
        resource = Resource(
            attributes=[
                KeyValue(key="service.name", value=_any(app)),
                KeyValue(key="deployment.environment.name", value=_any(env)),
            ]
        )
        spans = []
        for event in events:
            start = _start_ns(event)
            spans.append(
                Span(
                    trace_id=bytes.fromhex(event["trace_id"]),
                    span_id=bytes.fromhex(event["span_id"]),
                    parent_span_id=bytes.fromhex(event["parent_span_id"]),
                    name=f"{event['operation']} {event['model']}",
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + int(event["latency_ms"] * 1e6),
                    attributes=[KeyValue(key=k, value=_any(v)) for k, v in span_attributes(event).items()],
                    status=Status(
                        code=Status.STATUS_CODE_ERROR if event.get("status") == "error" else Status.STATUS_CODE_UNSET
                    ),
                )
            )
        request.resource_spans.append(ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)]))
    return request.SerializeToString()


def otlp_json_body(batch: list[dict[str, Any]]) -> bytes:
    resource_spans = []
    for (app, env), events in _groups(batch).items():
        spans = []
        for event in events:
            start = _start_ns(event)
            spans.append(
                {
                    "traceId": event["trace_id"],
                    "spanId": event["span_id"],
                    "parentSpanId": event["parent_span_id"],
                    "name": f"{event['operation']} {event['model']}",
                    "kind": 3,
                    "startTimeUnixNano": str(start),
                    "endTimeUnixNano": str(start + int(event["latency_ms"] * 1e6)),
                    "attributes": [{"key": k, "value": _json_any(v)} for k, v in span_attributes(event).items()],
                    "status": {"code": 2} if event.get("status") == "error" else {},
                }
            )
        resource_spans.append(
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": app}},
                        {"key": "deployment.environment.name", "value": {"stringValue": env}},
                    ]
                },
                "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}],
            }
        )
    return orjson.dumps({"resourceSpans": resource_spans})


def stored_events(store: Path) -> int:
    """Counted by a separate process once the server has stopped: chDB opens one data path per process."""
    return int(probe(f"chdb://{store}")["rows"])


def run_server_path(
    workers: int,
    name: str,
    path: str,
    headers: dict[str, str],
    bodies: list[bytes],
    warm: bytes,
    expected: int,
    workdir: Path,
    clients: int,
    check: Callable[[httpx.Response], None],
) -> float:
    env = {
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{workdir / name}",
        "LLMPULSE_INGEST_WORKERS": str(workers),
        "LLMPULSE_ALERTMANAGER_URL": "",
    }
    with running_serve(workdir, env) as served:
        base, headers = served.base, {**headers, **served.headers}
        check(httpx.post(f"{base}{path}", content=warm, headers=headers, timeout=60))
        elapsed = post_concurrently(f"{base}{path}", bodies, headers, clients, check)
    stored = stored_events(workdir / name) - 1  # the warm-up event
    if stored != expected:
        raise RuntimeError(f"{name}: stored {stored} of {expected}")
    return elapsed


def _check_events(response: httpx.Response) -> None:
    response.raise_for_status()
    if response.json()["rejected"]:
        raise RuntimeError(f"native batch had rejections: {response.json()['errors'][:3]}")


def _check_otlp(response: httpx.Response) -> None:
    response.raise_for_status()
    if response.content not in (b"", b"{}"):
        raise RuntimeError(f"OTLP batch was partly rejected: {response.content[:300]!r}")


def cpu_per_item(
    validator: EventValidator, label: str, decode: Callable[[bytes], Any], bodies: list[bytes], n: int
) -> tuple[str, float]:
    # CPU time of this process, not wall time: other load on the machine distorts it less.
    started = time.process_time()
    for body in bodies:
        validator.validate(decode(body), source="bench", source_ref="bench")
    return label, (time.process_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=512, help="calls per request (spans or events)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (exporting processes)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every path; the best one counts")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="LLMPULSE_INGEST_WORKERS of the servers: validation processes for /v1/events (OTLP validates in the "
        "API process either way); 0 compares both paths doing the same work in the same place",
    )
    args = parser.parse_args()

    calls = simulated_calls(args.calls)
    n = len(calls)
    batches = [calls[i : i + args.batch] for i in range(0, n, args.batch)]
    native = [b"\n".join(orjson.dumps(e) for e in batch) + b"\n" for batch in batches]
    proto = [otlp_proto_body(batch) for batch in batches]
    json = [otlp_json_body(batch) for batch in batches]
    mib = {k: sum(len(b) for b in v) / 2**20 for k, v in (("ndjson", native), ("proto", proto), ("json", json))}
    print(
        f"workload: {n:,} simulated calls in {len(batches)} requests of {args.batch}, {args.clients} concurrent "
        f"clients, LLMPULSE_INGEST_WORKERS={args.workers}, machine: {os.cpu_count()} cores\n"
        f"bodies: NDJSON {mib['ndjson']:.0f} MiB, OTLP/protobuf {mib['proto']:.0f} MiB, OTLP/JSON {mib['json']:.0f} MiB"
    )
    warm_event = {**calls[0], "event_id": "warm-1", "app": "warmup", "trace_id": "ab" * 16, "span_id": "cd" * 8}
    warm_native = orjson.dumps(warm_event) + b"\n"
    paths = {
        "POST /v1/events, NDJSON (native events)": ("/v1/events", NDJSON, native, warm_native, _check_events),
        "POST /v1/traces, OTLP/protobuf": ("/v1/traces", PROTOBUF, proto, otlp_proto_body([warm_event]), _check_otlp),
        "POST /v1/traces, OTLP/JSON": ("/v1/traces", JSON, json, otlp_json_body([warm_event]), _check_otlp),
    }
    timings: dict[str, float] = {}
    # Rounds alternate the paths and the best round counts, so a noisy neighbour hurts no path more than another.
    for round_no in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="llmpulse-bench-otlp-") as tmp:
            for i, (label, (path, headers, bodies, warm, check)) in enumerate(paths.items()):
                seconds = run_server_path(
                    args.workers,
                    f"store-{round_no}-{i}",
                    path,
                    headers,
                    bodies,
                    warm,
                    n,
                    Path(tmp),
                    args.clients,
                    check,
                )
                timings[label] = min(seconds, timings.get(label, float("inf")))
    native_rate = n / next(iter(timings.values()))
    print(f"best of {args.rounds} rounds")
    print(f"{'path (validate, map, price, dedup, insert, ack)':<48}{'calls/s':>10}{'seconds':>10}{'vs native':>11}")
    for label, seconds in timings.items():
        print(f"{label:<48}{n / seconds:>10,.0f}{seconds:>10.2f}{n / seconds / native_rate:>10.2f}x")

    validator = EventValidator(prices=PriceCatalog())
    sample = max(1, min(len(batches), 20_000 // args.batch))
    count = sum(len(b) for b in batches[:sample])
    rows = [
        cpu_per_item(validator, "NDJSON: parse + validate + price", iter_ndjson, native[:sample], count),
        cpu_per_item(
            validator, "OTLP/protobuf: decode + map + validate + price", decode_otlp_proto, proto[:sample], count
        ),
        cpu_per_item(validator, "OTLP/JSON: decode + map + validate + price", decode_otlp_json, json[:sample], count),
    ]
    print(f"\nCPU time per call in one process, {count:,} calls (no HTTP, no store):")
    for label, micros in rows:
        print(f"  {label:<50}{micros:>8.1f} µs")


if __name__ == "__main__":
    main()
