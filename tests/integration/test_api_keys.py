"""API keys on the real API (the app `llmpulse serve` builds, over real chDB): every route but /healthz needs a
key, scopes give 403, app-bound keys write only their apps, /v1/keys creates, lists and revokes, revocation
reaches another server within 5 s, LLMPULSE_AUTH_DISABLED=true warns at start-up, and no key ever leaks into
/metrics, /openapi.json, /docs, error bodies or logs.

The `llmpulse keys` CLI and `llmpulse serve` as a process are at the end (subprocesses, their own stores)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from collector.api.app import create_app
from collector.auth import Scope
from collector.keys import ApiKey, ClickHouseKeyStore, KeyAuthenticator, create_key
from llmpulse.runtime import build_ingest_service
from llmpulse.server import build_server_app
from llmpulse.settings import Settings
from tests.integration.test_otlp_http import PROTOBUF, chat_attrs, export, span
from tests.support.events import make_event
from tests.support.serve_process import create_key as cli_create_key
from tests.support.serve_process import running_serve

pytestmark = pytest.mark.integration

KEY_SHAPE = re.compile(r"^llmp_[A-Za-z0-9_-]{43}$")


def _settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "otlp_grpc_port": 0,
        "ingest_workers": 0,
        "alertmanager_url": [],
        "batch_max_seconds": 0.02,
        "auth_key_refresh_seconds": 1.0,
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg, arg-type]


@dataclass
class Api:
    http: TestClient
    app: FastAPI
    keys: dict[str, str]

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


def _keys(client: Client) -> dict[str, str]:
    store = ClickHouseKeyStore(client)
    return {
        "admin": create_key(store, "admin", Scope.ADMIN)[1],
        "ingest": create_key(store, "ingest", Scope.INGEST)[1],
        "read": create_key(store, "read", Scope.READ)[1],
        "support-only": create_key(store, "support-only", Scope.INGEST, ["support-bot"])[1],
    }


@pytest.fixture()
def api(store_client: Client) -> Iterator[Api]:
    keys = _keys(store_client)  # as `llmpulse keys create` does, before the server starts
    app = build_server_app(_settings(), store_client, kafka=False, analyzers=False)
    with TestClient(app) as http:
        yield Api(http, app, keys)


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI >= 0.16x keeps included routers whole
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = re.sub(r"\{[^}]+\}", "x", prefix + getattr(route, "path", ""))
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                yield method, path


def _route_paths(api: Api) -> list[tuple[str, str]]:
    """Every route of the app: walked, and (for what the walk might not see) every path of its OpenAPI schema."""
    found = set(_walk(api.app.routes))
    schema = api.http.get("/openapi.json", headers=api.auth("admin")).json()
    for path, operations in schema["paths"].items():
        for method in operations:
            found.add((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return sorted(found)


def test_every_route_but_healthz_needs_a_key(api: Api) -> None:
    routes = _route_paths(api)
    paths = {path for _, path in routes}
    assert {"/v1/events", "/v1/traces", "/v1/logs", "/v1/keys", "/v1/keys/x", "/metrics", "/openapi.json",
            "/docs", "/v1/findings"} <= paths
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer llmp_not-a-key"}, {"Authorization": "Basic Zm9vOg=="}):
            response = api.http.request(method, path, headers=headers)
            if path == "/healthz":
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (method, path, headers, response.text)
            assert "Bearer" in response.headers["www-authenticate"]
            assert "llmp_not-a-key" not in response.text, "the key is never echoed"
    assert api.http.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("key", "method", "path", "status"),
    [
        ("ingest", "GET", "/metrics", 403),
        ("ingest", "GET", "/v1/events", 403),
        ("ingest", "GET", "/v1/findings", 403),
        ("ingest", "GET", "/v1/keys", 403),
        ("read", "POST", "/v1/events", 403),
        ("read", "POST", "/v1/traces", 403),
        ("read", "POST", "/v1/logs", 403),
        ("read", "POST", "/v1/keys", 403),
        ("read", "DELETE", "/v1/keys/ingest", 403),
        ("read", "GET", "/metrics", 200),
        ("read", "GET", "/v1/findings", 200),
        ("read", "GET", "/openapi.json", 200),
        ("ingest", "GET", "/docs", 200),  # any valid key opens the documentation
        ("admin", "GET", "/metrics", 200),
        ("admin", "GET", "/v1/keys", 200),
    ],
)
def test_scopes(api: Api, key: str, method: str, path: str, status: int) -> None:
    response = api.http.request(method, path, headers=api.auth(key))
    assert response.status_code == status, response.text
    if status == 403:
        assert f"{key!r}" in response.json()["detail"] and "scope" in response.json()["detail"]
        assert api.keys[key] not in response.text


def test_ingest_and_admin_keys_write_over_http_and_otlp(api: Api, store_client: Client) -> None:
    for key, n in (("ingest", 1), ("admin", 2)):
        posted = api.http.post("/v1/events", content=orjson.dumps([make_event(n)]), headers=api.auth(key))
        assert posted.status_code == 200 and posted.json()["accepted"] == 1
    traces = api.http.post(
        "/v1/traces",
        content=export([span(1, "chat gpt-4o-mini", chat_attrs())]).SerializeToString(),
        headers={**PROTOBUF, **api.auth("ingest")},
    )
    assert traces.status_code == 200, traces.text
    assert _count(store_client, "events") == 3
    # Basic auth with the key as password works too (browsers opening /docs, scrapers).
    assert api.http.get("/metrics", auth=("anyone", api.keys["read"])).status_code == 200


def _count(client: Client, table: str, where: str = "1") -> int:
    return int(client.query(f"SELECT count() FROM {table} WHERE {where}").result_rows[0][0])


def test_a_key_bound_to_an_app_writes_only_that_app(api: Api, store_client: Client) -> None:
    batch = [make_event(1), make_event(2, app="sales-bot"), make_event(3)]
    response = api.http.post("/v1/events", content=orjson.dumps(batch), headers=api.auth("support-only"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 1
    [error] = body["errors"]
    assert error["index"] == 1 and "sales-bot" in error["reason"] and "support-only" in error["reason"]
    assert api.keys["support-only"] not in response.text
    stored = {row[0] for row in store_client.query("SELECT app FROM events").result_rows}
    assert stored == {"support-bot"}
    rejected = store_client.query("SELECT item_index, reason, source, payload FROM rejected_events").result_rows
    assert len(rejected) == 1
    index, reason, source, payload = rejected[0]
    assert index == 1 and source == "http" and "sales-bot" in reason
    assert orjson.loads(payload)["event_id"] == "evt-000002"  # the item is kept to be replayed with the right key

    only_others = api.http.post(
        "/v1/events", content=orjson.dumps([make_event(4, app="sales-bot")]), headers=api.auth("support-only")
    )
    assert only_others.status_code == 422 and "sales-bot" in only_others.json()["errors"][0]["reason"]


def test_a_key_bound_to_an_app_gets_other_apps_spans_rejected_over_otlp_http(api: Api, store_client: Client) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    request = export([span(1, "chat gpt-4o-mini", chat_attrs())], service_name="checkout")
    response = api.http.post(
        "/v1/traces", content=request.SerializeToString(), headers={**PROTOBUF, **api.auth("support-only")}
    )
    assert response.status_code == 200, response.text
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "checkout" in answer.partial_success.error_message
    assert _count(store_client, "events") == 0
    assert _count(store_client, "rejected_events", "source = 'otlp' AND position(reason, 'checkout') > 0") == 1


def test_keys_api_creates_lists_and_revokes(api: Api, store_client: Client) -> None:
    created = api.http.post(
        "/v1/keys", json={"name": "ci", "scope": "ingest", "apps": ["support-bot"]}, headers=api.auth("admin")
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert KEY_SHAPE.match(key) and body["scope"] == "ingest" and body["apps"] == ["support-bot"]
    assert key.startswith(body["key_prefix"]) and len(body["key_prefix"]) < 12

    # Only the SHA-256 is stored.
    stored = store_client.query("SELECT key_hash, key_prefix FROM api_keys WHERE name = 'ci'").result_rows
    assert stored and all(key not in str(row) for row in stored)

    # Usable at once on this server.
    as_new = {"Authorization": f"Bearer {key}"}
    posted = api.http.post("/v1/events", content=orjson.dumps([make_event(1)]), headers=as_new)
    assert posted.status_code == 200

    listed = api.http.get("/v1/keys", headers=api.auth("admin"))
    assert listed.status_code == 200
    names = {k["name"]: k for k in listed.json()}
    assert {"admin", "ingest", "read", "support-only", "ci"} <= set(names)
    assert "key" not in names["ci"] and "key_hash" not in names["ci"]
    for secret in [key, *api.keys.values()]:
        assert secret not in listed.text
    assert names["ci"]["revoked_at"] is None

    assert api.http.post("/v1/keys", json={"name": "ci", "scope": "read"}, headers=api.auth("admin")).status_code == 409
    assert api.http.post("/v1/keys", json={"name": "bad name!", "scope": "read"},
                         headers=api.auth("admin")).status_code == 422
    assert api.http.post("/v1/keys", json={"name": "x", "scope": "root"}, headers=api.auth("admin")).status_code == 422

    revoked = api.http.delete("/v1/keys/ci", headers=api.auth("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = api.http.post("/v1/events", content=orjson.dumps([make_event(2)]), headers=as_new)
    assert refused.status_code == 401 and key not in refused.text
    assert api.http.delete("/v1/keys/ci", headers=api.auth("admin")).status_code == 404
    assert api.http.delete("/v1/keys/nobody", headers=api.auth("admin")).status_code == 404
    # A revoked key's name may be reused, with a new key.
    again = api.http.post("/v1/keys", json={"name": "ci", "scope": "read"}, headers=api.auth("admin"))
    assert again.status_code == 201 and again.json()["key"] != key
    assert api.http.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_revocation_reaches_another_server_within_5_seconds(api: Api, store_client: Client) -> None:
    other = build_server_app(_settings(auth_key_refresh_seconds=2.0), store_client, kafka=False, analyzers=False)
    with TestClient(other) as second:
        created = api.http.post("/v1/keys", json={"name": "short-lived", "scope": "read"}, headers=api.auth("admin"))
        headers = {"Authorization": f"Bearer {created.json()['key']}"}
        # A key created on one server works on the other within the refresh interval too.
        deadline = time.monotonic() + 5
        while second.get("/metrics", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "a new key was not accepted by the other server within 5 s"
            time.sleep(0.1)

        assert api.http.delete("/v1/keys/short-lived", headers=api.auth("admin")).status_code == 200
        revoked_at = time.monotonic()
        assert api.http.get("/metrics", headers=headers).status_code == 401  # at once where it was revoked
        while (status := second.get("/metrics", headers=headers).status_code) == 200:
            assert time.monotonic() - revoked_at < 5, "the revoked key still works on the other server after 5 s"
            time.sleep(0.1)
        assert status == 401


class FlakyStore:
    """The real key store, made unreadable on demand."""

    def __init__(self, store: ClickHouseKeyStore) -> None:
        self.store = store
        self.broken = False

    def all_keys(self) -> list[ApiKey]:
        if self.broken:
            raise ConnectionError("ClickHouse at http://llmpulse:***@clickhouse:8123 is unreachable")
        return self.store.all_keys()

    def put(self, key: ApiKey) -> None:
        self.store.put(key)


def test_an_unreadable_key_store_is_trusted_for_5_seconds_then_answers_503(
    store_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(ClickHouseKeyStore(store_client))
    key = create_key(store, "reader", Scope.READ)[1]
    now = [1000.0]
    authenticator = KeyAuthenticator(store, refresh_s=2.0, max_stale_s=5.0, monotonic=lambda: now[0])
    service = build_ingest_service(_settings(), store_client)
    app = create_app(service, authenticator=authenticator)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as http:
        assert http.get("/metrics", headers=headers).status_code == 200
        store.broken = True
        now[0] += 3  # due for a refresh that fails: the 3-second-old snapshot still serves
        assert http.get("/metrics", headers=headers).status_code == 200
        assert "cannot read API keys from the store" in caplog.text
        now[0] += 3  # 6 s without a successful read: a revoked key might still be in the snapshot
        refused = http.get("/metrics", headers=headers)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        store.broken = False
        assert http.get("/metrics", headers=headers).status_code == 200
    assert key not in caplog.text


def test_no_key_in_metrics_openapi_docs_or_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = api.http.post("/v1/keys", json={"name": "leak-check", "scope": "ingest"}, headers=api.auth("admin"))
    new_key = created.json()["key"]
    api.http.post("/v1/events", content=orjson.dumps([make_event(1)]), headers={"Authorization": f"Bearer {new_key}"})
    api.http.get("/metrics", headers={"Authorization": f"Bearer {new_key}"})  # 403, counted
    api.http.get("/metrics", headers={"Authorization": "Bearer llmp_wrong"})
    secrets = [new_key, *api.keys.values()]
    metrics = api.http.get("/metrics", headers=api.auth("read")).text
    assert 'llmpulse_auth_failures_total{status="403"} 1.0' in metrics
    assert 'llmpulse_auth_failures_total{status="401"} 1.0' in metrics
    openapi = api.http.get("/openapi.json", headers=api.auth("read"))
    assert openapi.json()["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    docs = api.http.get("/docs", headers=api.auth("read")).text
    keys_list = api.http.get("/v1/keys", headers=api.auth("admin")).text
    for text in (metrics, openapi.text, docs, keys_list, caplog.text):
        for secret in secrets:
            assert secret not in text
            assert secret[len("llmp_"):] not in text


def test_auth_disabled_warns_at_start_up_and_lets_anyone_in(
    store_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = build_server_app(_settings(auth_disabled=True), store_client, kafka=False, analyzers=False)
    assert "LLMPULSE_AUTH_DISABLED=true" in caplog.text and "WITHOUT API keys" in caplog.text
    with TestClient(app) as http:
        assert http.post("/v1/events", content=orjson.dumps([make_event(1)])).status_code == 200
        assert http.get("/metrics").status_code == 200


def test_no_keys_yet_warns_how_to_create_one(store_client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    app = build_server_app(_settings(), store_client, kafka=False, analyzers=False)
    assert "llmpulse keys create" in caplog.text
    with TestClient(app) as http:
        assert http.post("/v1/events", content=orjson.dumps([make_event(1)])).status_code == 401


# --- the CLI and `llmpulse serve` as processes ------------------------------------------------------------------


def _cli(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", *args],
        env={**os.environ, **env},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_cli_prints_only_the_key_and_never_lists_it(tmp_path: Path) -> None:
    env = {"LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}"}
    created = _cli(tmp_path, env, "keys", "create", "ci", "--scope", "ingest", "--app", "support-bot", "--app", "b")
    assert created.returncode == 0, created.stderr
    assert KEY_SHAPE.match(created.stdout.rstrip("\n")) and created.stdout.count("\n") == 1, created.stdout
    key = created.stdout.strip()
    assert "created key 'ci'" in created.stderr and key not in created.stderr

    table = _cli(tmp_path, env, "keys", "list")
    as_json = _cli(tmp_path, env, "keys", "list", "--json")
    assert table.returncode == as_json.returncode == 0
    [row] = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert row["name"] == "ci" and row["scope"] == "ingest" and row["apps"] == ["b", "support-bot"]
    assert row["revoked_at"] is None and key.startswith(row["key_prefix"])
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()
    for output in (table.stdout + table.stderr, as_json.stdout + as_json.stderr):
        assert key not in output and key[len("llmp_"):] not in output and digest not in output
    assert "ci" in table.stdout and "support-bot" in table.stdout

    duplicate = _cli(tmp_path, env, "keys", "create", "ci", "--scope", "read")
    assert duplicate.returncode == 2 and duplicate.stdout == "" and "active key named 'ci'" in duplicate.stderr
    bad_scope = _cli(tmp_path, env, "keys", "create", "x", "--scope", "root")
    assert bad_scope.returncode == 2 and bad_scope.stdout == "" and "--scope must be one of" in bad_scope.stderr

    revoked = _cli(tmp_path, env, "keys", "revoke", "ci")
    assert revoked.returncode == 0 and "revoked key 'ci'" in revoked.stderr
    [after] = [orjson.loads(line) for line in _cli(tmp_path, env, "keys", "list", "--json").stdout.splitlines()]
    assert after["revoked_at"] is not None
    assert _cli(tmp_path, env, "keys", "list", "--json", "--no-revoked").stdout == ""
    again = _cli(tmp_path, env, "keys", "revoke", "ci")
    assert again.returncode == 2 and "already revoked" in again.stderr


def test_help_and_errors_never_show_the_clickhouse_password(tmp_path: Path) -> None:
    env = {"LLMPULSE_CLICKHOUSE_URL": "http://llmpulse:hunter2-secret@127.0.0.1:9/llmpulse"}
    for args in (("--help",), ("keys", "--help"), ("keys", "create", "--help"), ("serve", "--help")):
        shown = _cli(tmp_path, env, *args)
        assert shown.returncode == 0, shown.stderr
        assert "hunter2-secret" not in shown.stdout + shown.stderr
    for args in (("keys", "list"), ("serve", "--port", "0")):
        failed = _cli(tmp_path, {**env, "LLMPULSE_OTLP_GRPC_PORT": "0"}, *args)
        assert failed.returncode != 0
        assert "hunter2-secret" not in failed.stdout + failed.stderr
        assert "llmpulse:***@127.0.0.1" in failed.stdout + failed.stderr, failed.stderr


def test_serve_process_with_keys_and_an_otlp_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "LLMPULSE_INGEST_WORKERS": "0",
        # Credentials in a URL are shown as user:*** wherever the URL appears (metrics labels, logs).
        "LLMPULSE_ALERTMANAGER_URL": "http://alerts:am-hunter2@127.0.0.1:9",
        "LLMPULSE_ANALYZERS_ENABLED": "false",
    }
    ingest_key = cli_create_key(tmp_path, env, "exporter", "ingest")
    with running_serve(tmp_path, env) as served:
        base = served.base
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
        assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 401
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200

        # An OpenTelemetry SDK exporter configured the documented way: OTEL_EXPORTER_OTLP_HEADERS.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

        results: list[SpanExportResult] = []

        class Recording(OTLPSpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                result = super().export(spans)
                results.append(result)
                return result

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{ingest_key}")
        provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        provider.add_span_processor(SimpleSpanProcessor(Recording(endpoint=f"{base}/v1/traces", timeout=30)))
        with provider.get_tracer("test").start_as_current_span("chat gpt-4o-mini") as current:
            for name, value in chat_attrs().items():
                current.set_attribute(name, value)
        provider.shutdown()
        assert results == [SpanExportResult.SUCCESS]

        deadline = time.monotonic() + 10
        while True:
            page = httpx.get(f"{base}/v1/events", params={"app": "checkout"}, headers=served.headers, timeout=10)
            assert page.status_code == 200, page.text
            if page.json()["count"] == 1:
                break
            assert time.monotonic() < deadline, page.text
            time.sleep(0.2)

        metrics = httpx.get(f"{base}/metrics", headers=served.headers, timeout=10).text
        openapi = httpx.get(f"{base}/openapi.json", headers=served.headers, timeout=10).text
        assert "llmpulse_events_accepted_total" in metrics
    log_text = (tmp_path / "serve.log").read_text()
    assert served.key is not None
    for secret in (served.key, ingest_key, "am-hunter2"):
        for text in (metrics, openapi, log_text):
            assert secret not in text


def test_serve_process_with_auth_disabled_warns(tmp_path: Path) -> None:
    env = {
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "LLMPULSE_INGEST_WORKERS": "0",
        "LLMPULSE_ALERTMANAGER_URL": "",
        "LLMPULSE_ANALYZERS_ENABLED": "false",
        "LLMPULSE_AUTH_DISABLED": "true",
    }
    with running_serve(tmp_path, env) as served:
        assert served.key is None
        posted = httpx.post(f"{served.base}/v1/events", content=orjson.dumps([make_event(1)]), timeout=30)
        assert posted.status_code == 200 and posted.json()["accepted"] == 1
        assert httpx.get(f"{served.base}/metrics", timeout=10).status_code == 200
    log_text = (tmp_path / "serve.log").read_text()
    assert "LLMPULSE_AUTH_DISABLED=true" in log_text and "WITHOUT API keys" in log_text
