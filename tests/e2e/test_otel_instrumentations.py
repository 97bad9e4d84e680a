"""Real instrumentation libraries, unchanged apps: the `openai` client traced by each library, exported with the
standard OTLP/HTTP exporter to llmpulse, and every call shows up as an event with the right numbers.

Per library, a driver process (tests/support/otel_driver.py) makes four calls to a local OpenAI-compatible
server (tests/support/fake_openai.py) — chat, streaming chat, tool call, provider error — each inside an app
span of its own. The drivers run side by side; llmpulse runs in this process (uvicorn threads, because chDB
allows one data path per process) with two stores: one receives the exporter's protobuf, the other the same
spans as OTLP/JSON, and both must end up holding the same events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from clickhouse_connect.driver.client import Client

from collector.api.app import create_app
from collector.auth import AllowAll
from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.pricing import PriceCatalog, TokenUsage
from collector.service import IngestService
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator
from llmpulse.clickhouse import connect
from llmpulse.migrate import Retention, migrate
from tests.support import fake_openai
from tests.support.otel_driver import LIBRARIES, REQUEST_MODEL, SYSTEM_PROMPT, USER_PROMPT

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("chat", "stream", "tool_call", "error", "rate_limited")


@dataclass(frozen=True)
class Reports:
    """What a library puts on its spans for these calls (versions pinned in pyproject's otel-tests group)."""

    cached_tokens: bool
    ttft: bool


REPORTS = {
    # openai-v2 2.4b0 neither reads prompt_tokens_details nor times the first chunk of a stream.
    "openai-v2": Reports(cached_tokens=False, ttft=False),
    "openinference": Reports(cached_tokens=True, ttft=True),
    "openllmetry": Reports(cached_tokens=True, ttft=True),
}


class ServerThread:
    """The real llmpulse HTTP app, served by uvicorn on a free loopback port in a thread of this process."""

    def __init__(self, service: IngestService) -> None:
        config = uvicorn.Config(
            create_app(service, authenticator=AllowAll()), host="127.0.0.1", port=0, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="llmpulse-e2e", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class Store:
    client: Client
    service: IngestService


@dataclass
class DriverRun:
    trace_ids: dict[str, str]
    result: dict[str, Any]


def _store(chdb_url: str, name: str) -> Store:
    client = connect(chdb_url, database=f"e2e_{name}_{uuid.uuid4().hex[:8]}")
    migrate(client, Retention(events_days=3650, text_days=3650, rejected_days=30))
    metrics = IngestMetrics()
    inserter = BulkInserter(ClickHouseEventStore(client), max_delay_s=0.05, metrics=metrics)
    service = IngestService(validator=EventValidator(prices=PriceCatalog()), inserter=inserter, metrics=metrics)
    return Store(client, service)


@pytest.fixture(scope="module")
def stores(chdb_url: str) -> Iterator[tuple[Store, Store]]:
    proto, json = _store(chdb_url, "proto"), _store(chdb_url, "json")
    yield proto, json
    for store in (proto, json):
        store.client.command(f"DROP DATABASE IF EXISTS `{store.client.database}`")


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_openai"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    try:
        assert line.startswith("PORT="), f"fake provider did not start: {line!r}"
        yield f"http://127.0.0.1:{line.removeprefix('PORT=')}/v1"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def runs(stores: tuple[Store, Store], provider_url: str) -> Iterator[dict[str, DriverRun]]:
    proto, json = stores
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))}
    with ServerThread(proto.service) as proto_server, ServerThread(json.service) as json_server:
        processes = {
            library: subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.otel_driver",
                    library,
                    "--openai-url",
                    provider_url,
                    "--otlp-url",
                    f"{proto_server.url}/v1/traces",
                    "--json-url",
                    f"{json_server.url}/v1/traces",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for library in LIBRARIES
        }
        outputs = {library: process.communicate(timeout=120) for library, process in processes.items()}
    results = {}
    for library, (stdout, stderr) in outputs.items():
        assert processes[library].returncode == 0, f"{library} driver failed:\n{stdout}\n{stderr[-3000:]}"
        trace_ids = dict(
            tuple(part.split("=", 1)[1] for part in line.split()[1:3])  # type: ignore[misc]
            for line in stdout.splitlines()
            if line.startswith("SCENARIO ")
        )
        result = orjson.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])
        results[library] = DriverRun(trace_ids, result)
    yield results


EVENT_COLUMNS = (
    "event_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "app",
    "environment",
    "feature",
    "operation",
    "provider",
    "model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_type",
    "finish_reason",
    "cost_usd",
    "input_text",
    "output_text",
    "output_messages",
    "start_time",
    "source",
    "metadata",
)


def _events(client: Client, app: str) -> dict[str, dict[str, Any]]:
    rows = client.query(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE app = {{app:String}}", parameters={"app": app}
    ).result_rows
    return {row[1]: dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows}


def _expected_cost(library: str, start: datetime, *, tokens: bool = True) -> float:
    usage = TokenUsage(
        input_tokens=fake_openai.USAGE["prompt_tokens"] if tokens else 0,
        output_tokens=fake_openai.USAGE["completion_tokens"] if tokens else 0,
        cache_read_input_tokens=64 if tokens and REPORTS[library].cached_tokens else 0,
    )
    cost = PriceCatalog().cost(model=REQUEST_MODEL, provider="openai", usage=usage, at=start)
    assert cost.total_usd is not None
    return cost.total_usd


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_call_becomes_an_event_with_the_right_numbers(
    library: str, runs: dict[str, DriverRun], stores: tuple[Store, Store]
) -> None:
    run = runs[library]
    assert run.result["proto_flushed"] is True
    events = _events(stores[0].client, f"otel-e2e-{library}")
    assert set(run.trace_ids) == set(SCENARIOS)
    assert set(events) == set(run.trace_ids.values()), "exactly one event per call, none for the app spans"
    by_scenario = {name: events[trace_id] for name, trace_id in run.trace_ids.items()}

    for name, event in by_scenario.items():
        assert event["event_id"] == f"otel-{event['trace_id']}-{event['span_id']}", name
        assert (event["environment"], event["feature"], event["operation"]) == ("staging", "password-help", "chat")
        assert (event["provider"], event["model"]) == ("openai", REQUEST_MODEL), name
        assert event["parent_span_id"], "the LLM span hangs under the app's own span"
        assert event["source"] == "otlp"
        assert USER_PROMPT in event["input_text"] or name in ("tool_call", "error", "rate_limited")

    chat = by_scenario["chat"]
    assert (chat["response_model"], chat["status"], chat["finish_reason"]) == (fake_openai.RESPONSE_MODEL, "ok", "stop")
    assert (chat["input_tokens"], chat["output_tokens"]) == (120, 30)
    assert chat["cache_read_input_tokens"] == (64 if REPORTS[library].cached_tokens else 0)
    assert SYSTEM_PROMPT in chat["input_text"] and chat["output_text"] == fake_openai.REPLY_TEXT
    assert chat["cost_usd"] == pytest.approx(_expected_cost(library, chat["start_time"]))
    assert fake_openai.RESPONSE_DELAY_S * 1000 <= chat["latency_ms"] < 5_000
    assert chat["ttft_ms"] is None

    stream = by_scenario["stream"]
    assert stream["output_text"] == fake_openai.REPLY_TEXT
    assert (stream["input_tokens"], stream["output_tokens"], stream["status"]) == (120, 30, "ok")
    assert stream["cost_usd"] == pytest.approx(_expected_cost(library, stream["start_time"]))
    gaps_ms = (len(fake_openai.STREAM_PIECES) - 1) * fake_openai.CHUNK_GAP_S * 1000
    assert stream["latency_ms"] >= fake_openai.FIRST_CHUNK_DELAY_S * 1000 + gaps_ms
    if REPORTS[library].ttft:
        assert fake_openai.FIRST_CHUNK_DELAY_S * 1000 * 0.8 <= stream["ttft_ms"] <= stream["latency_ms"] - gaps_ms * 0.8
    else:
        assert stream["ttft_ms"] is None or stream["ttft_ms"] < stream["latency_ms"]

    tool = by_scenario["tool_call"]
    assert tool["finish_reason"] in ("tool_calls", "tool_call")  # OpenLLMetry normalises to the singular
    (message,) = orjson.loads(tool["output_messages"])
    (part,) = message["content"]
    assert (part["type"], part["name"], part["id"]) == ("tool_call", "get_weather", fake_openai.TOOL_CALL_ID)
    assert part["arguments"] == {"city": "Paris"}
    assert "Weather in Paris?" in tool["input_text"]

    # The exception class each library reports (openai.BadRequestError, BadRequestError, ...) is stored as the
    # contract's type, so the outage detector can tell the caller's mistakes from the provider's failures.
    error = by_scenario["error"]
    assert (error["status"], error["error_type"]) == ("error", "invalid_request")
    assert error["metadata"]["error.type.raw"].endswith("BadRequestError"), "what the library sent is kept"
    limited = by_scenario["rate_limited"]
    assert (limited["status"], limited["error_type"]) == ("error", "rate_limit")
    assert (error["output_text"], error["input_tokens"], error["output_tokens"]) == ("", 0, 0)
    assert error["cost_usd"] == 0.0 and "please fail now" in error["input_text"]


def test_otlp_json_of_the_same_spans_stores_the_same_events(
    runs: dict[str, DriverRun], stores: tuple[Store, Store]
) -> None:
    proto, json = stores
    for library, run in runs.items():
        response = run.result["json_response"]
        assert response.pop("http_status") == 200 and response == {}, f"{library}: {response}"
    columns = "* EXCEPT (ingested_at)"
    from_proto = proto.client.query(f"SELECT {columns} FROM events ORDER BY event_id").result_rows
    from_json = json.client.query(f"SELECT {columns} FROM events ORDER BY event_id").result_rows
    assert len(from_proto) == len(SCENARIOS) * len(LIBRARIES)
    assert from_json == from_proto


def test_app_spans_are_counted_as_skipped_and_nothing_is_rejected(
    runs: dict[str, DriverRun], stores: tuple[Store, Store]
) -> None:
    for store in stores:
        skipped = store.service.metrics.registry.get_sample_value(
            "llmpulse_otlp_spans_skipped_total", {"source": "otlp"}
        )
        assert skipped == len(SCENARIOS) * len(LIBRARIES)
        assert store.client.query("SELECT count() FROM rejected_events").result_rows[0][0] == 0


# -- OTLP/gRPC and content from log events, against a real `llmpulse serve` --------------------------------
# openai-v2 with content capture in events mode sends prompts and completions as a log event
# (gen_ai.client.inference.operation.details), not on the span; the SDK's gRPC exporters send spans and logs to
# the serve process's OTLP/gRPC receiver, with an API key. Each driver holds both signals and flushes them in
# the order asked for, so content arrives before or after its span.

CONTENT_RUNS = {
    # app: (driver arguments besides the endpoints, the transport)
    "content-logs-first-grpc": (["--content", "events", "--order", "logs-first"], "grpc"),
    "content-spans-first-grpc": (["--content", "events", "--order", "spans-first"], "grpc"),
    "content-spans-first-http": (["--content", "events", "--order", "spans-first"], "http"),
}


def _store_rows(url: str, sql: str) -> list[list[Any]]:
    """Rows of an embedded store this process cannot open (chDB: one path per process), read by a subprocess."""
    code = (
        "import sys, orjson\n"
        "from llmpulse.clickhouse import connect\n"
        "rows = connect(sys.argv[1]).query(sys.argv[2]).result_rows\n"
        "sys.stdout.write(orjson.dumps(rows, default=str).decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, url, sql], cwd=REPO, capture_output=True, timeout=120, check=True)
    rows: list[list[Any]] = orjson.loads(out.stdout)
    return rows


@pytest.fixture(scope="module")
def content_store(tmp_path_factory: pytest.TempPathFactory, provider_url: str) -> Iterator[dict[str, Any]]:
    from tests.support.serve_process import free_port, running_serve

    workdir = tmp_path_factory.mktemp("serve-grpc")
    store_url = f"chdb://{workdir / 'store'}"
    base_env = {**_clean_env(), "LLMPULSE_CLICKHOUSE_URL": store_url}
    keys = {}
    for name, scope in (("otel-e2e", "ingest"), ("metrics-reader", "read")):
        created = subprocess.run(
            [sys.executable, "-m", "llmpulse.cli", "keys", "create", name, "--scope", scope],
            cwd=workdir,
            env=base_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        keys[scope] = created.stdout.strip()
    key = keys["ingest"]
    grpc_port = free_port()
    serve_env = {
        "LLMPULSE_CLICKHOUSE_URL": store_url,
        "LLMPULSE_INGEST_WORKERS": "1",
        "LLMPULSE_ALERTMANAGER_URL": "",
        "LLMPULSE_ANALYZERS_ENABLED": "false",
        "LLMPULSE_OTLP_GRPC_PORT": str(grpc_port),
    }
    outputs: dict[str, tuple[int, str, str]] = {}
    with running_serve(workdir, serve_env, admin_key=False) as served:
        base = served.base
        processes = {}
        for app, (args, transport) in CONTENT_RUNS.items():
            endpoints = (
                ["--grpc-endpoint", f"127.0.0.1:{grpc_port}"]
                if transport == "grpc"
                else ["--otlp-url", f"{base}/v1/traces", "--logs-url", f"{base}/v1/logs"]
            )
            processes[app] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.otel_driver",
                    "openai-v2",
                    "--openai-url",
                    provider_url,
                    "--app",
                    app,
                    "--api-key",
                    key,
                    "--only",
                    "chat,tool_call",
                    *endpoints,
                    *args,
                ],
                cwd=REPO,
                env=_clean_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        for app, process in processes.items():
            stdout, stderr = process.communicate(timeout=120)
            outputs[app] = (process.returncode, stdout, stderr)
        metrics = httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {keys['read']}"}, timeout=30).text
    columns = "app, trace_id, input_text, output_text, output_messages, finish_reason, status"
    rows = _store_rows(store_url, f"SELECT {columns} FROM events ORDER BY app, start_time")
    content = _store_rows(store_url, "SELECT count(), uniqExact(event_id) FROM otlp_content")
    yield {"outputs": outputs, "rows": rows, "content": content, "metrics": metrics}


def test_content_arrived_both_before_and_after_its_span(content_store: dict[str, Any]) -> None:
    metrics = content_store["metrics"]
    joined = {
        outcome: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("llmpulse_otlp_content_records_total")
        for outcome in ("joined_before_span", "joined_after_span")
        if f'outcome="{outcome}"' in line
    }
    # One details event per call: 2 calls joined before their span, 4 after (2 over gRPC, 2 over HTTP).
    assert joined == {"joined_before_span": 2.0, "joined_after_span": 4.0}, joined
    assert content_store["content"] == [[6, 6]], "every content record is kept, once"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_", "LLMPULSE_"))}


@pytest.mark.parametrize("app", list(CONTENT_RUNS))
def test_content_from_log_events_is_stored_on_the_event(app: str, content_store: dict[str, Any]) -> None:
    code, stdout, stderr = content_store["outputs"][app]
    assert code == 0, f"{app} driver failed:\n{stdout}\n{stderr[-3000:]}"
    result = orjson.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["proto_flushed"] is True and result["logs_flushed"] is True, result
    trace_ids = dict(
        tuple(part.split("=", 1)[1] for part in line.split()[1:3])  # type: ignore[misc]
        for line in stdout.splitlines()
        if line.startswith("SCENARIO ")
    )
    events = {row[1]: row for row in content_store["rows"] if row[0] == app}
    assert set(events) == set(trace_ids.values()), "one event per call, whatever came first"

    _, _, input_text, output_text, _, finish_reason, status = events[trace_ids["chat"]]
    assert SYSTEM_PROMPT in input_text and USER_PROMPT in input_text, input_text
    assert (output_text, finish_reason, status) == (fake_openai.REPLY_TEXT, "stop", "ok")

    tool = events[trace_ids["tool_call"]]
    assert "Weather in Paris?" in tool[2]
    (message,) = orjson.loads(tool[4])
    assert any(part.get("type") == "tool_call" and part.get("name") == "get_weather" for part in message["content"])
