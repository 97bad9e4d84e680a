"""AlertmanagerClient over real local HTTP: URL handling and how failures are classified for retry/metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerts.api import runbooks_router
from alerts.factory import alert_links, alertmanager_sinks
from alerts.sender import AlertmanagerClient, AlertmanagerURLError, DeliveryError, parse_alertmanager_url
from llmpulse.settings import Settings


class Recorder:
    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[str, dict[str, str], Any]] = []


@pytest.fixture()
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            recorder.requests.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(recorder.status)
            self.end_headers()
            self.wfile.write(b'{"error":"start time must be before end time"}' if recorder.status == 400 else b"")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", recorder
    httpd.shutdown()
    httpd.server_close()


def test_url_forms() -> None:
    assert parse_alertmanager_url("http://am:9093").alerts_url == "http://am:9093/api/v2/alerts"
    assert parse_alertmanager_url(" https://ops.example/alertmanager/ ").alerts_url == \
        "https://ops.example/alertmanager/api/v2/alerts"
    assert parse_alertmanager_url("http://am:9093/api/v2/alerts").base_url == "http://am:9093"
    endpoint = parse_alertmanager_url("http://ops:s3cret@am:9093")
    assert endpoint.base_url == "http://am:9093"  # no credentials in logs or metric labels
    assert endpoint.authorization == "Basic b3BzOnMzY3JldA=="
    for bad in ("am:9093", "ftp://am", "http://", "http://am:9093?x=1", "http://am:99999"):
        with pytest.raises(AlertmanagerURLError, match="Alertmanager URL"):
            parse_alertmanager_url(bad)


def test_posts_json_with_auth(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    host = url.removeprefix("http://")
    AlertmanagerClient(f"http://ops:pw@{host}/prefix").post([{"labels": {"alertname": "LLMCostSpike"}}])
    [(path, headers, body)] = recorder.requests
    assert path == "/prefix/api/v2/alerts"
    assert headers["Content-Type"] == "application/json" and headers["Authorization"].startswith("Basic ")
    assert body == [{"labels": {"alertname": "LLMCostSpike"}}]


@pytest.mark.parametrize(("status", "reason"), [(500, "http_5xx"), (503, "http_5xx"), (429, "http_5xx"),
                                                (400, "http_4xx")])
def test_http_errors_are_classified(server: tuple[str, Recorder], status: int, reason: str) -> None:
    url, recorder = server
    recorder.status = status
    with pytest.raises(DeliveryError) as caught:
        AlertmanagerClient(url).post([])
    assert caught.value.reason == reason and str(status) in str(caught.value)
    if status == 400:
        assert "start time must be before end time" in str(caught.value)


def test_unreachable_alertmanager() -> None:
    with pytest.raises(DeliveryError) as caught:
        AlertmanagerClient("http://127.0.0.1:1", timeout=1).post([])
    assert caught.value.reason == "unreachable"


def test_settings_build_links_and_sinks() -> None:
    settings = Settings.model_validate(
        {"alertmanager_url": "http://a:9093, http://b:9093", "http_host": "0.0.0.0", "http_port": 8080}
    )
    assert [s.name for s in alertmanager_sinks(settings)] == ["http://a:9093", "http://b:9093"]
    links = alert_links(settings)
    assert (links.public_base_url, links.runbook_base_url) == ("http://localhost:8080", "http://localhost:8080/runbooks")
    custom = alert_links(Settings(alert_public_base_url="https://llmpulse.example/", alert_runbook_base_url="https://wiki/rb"))
    assert (custom.public_base_url, custom.runbook_base_url) == ("https://llmpulse.example", "https://wiki/rb")
    assert alertmanager_sinks(Settings()) == []


def test_runbook_links_resolve_on_the_api() -> None:
    api = FastAPI()
    api.include_router(runbooks_router())
    client = TestClient(api)
    response = client.get("/runbooks/LLMProviderOutage.md")
    assert response.status_code == 200 and response.text.startswith("# LLMProviderOutage")
    assert response.headers["content-type"].startswith("text/markdown")
    assert client.get("/runbooks/LLMNope.md").status_code == 404
    assert client.get("/runbooks/..%2F..%2Fpyproject.toml").status_code == 404
