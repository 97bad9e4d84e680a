"""GET /v1/events on the real API over real ClickHouse (chDB): filters, cursor paging, scopes, per-app keys.

Keys are resolved by a small table-driven Authenticator (the seam of collector/auth.py), so these tests do not
depend on how keys are stored; the scope and app checks are the route's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from collector.api.app import create_app
from collector.auth import AuthError, Principal, Scope
from collector.pricing import PriceCatalog
from collector.queries import ClickHouseEventQueries
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, RawItem
from llmpulse.runtime import build_ingest_service
from llmpulse.settings import Settings
from tests.support.events import make_event

pytestmark = pytest.mark.integration

KEYS = {
    "reader": Principal("reader", Scope.READ),
    "support-reader": Principal("support-reader", Scope.READ, frozenset({"support-bot"})),
    "ingester": Principal("ingester", Scope.INGEST),
}


class TableAuthenticator:
    def authenticate(self, authorization: str | None, scope: Scope | None) -> Principal:
        token = (authorization or "").removeprefix("Bearer ").strip()
        principal = KEYS.get(token)
        if principal is None:
            raise AuthError(401, "unknown API key")
        if scope is not None and principal.scope not in (scope, Scope.ADMIN):
            raise AuthError(403, f"key {principal.name!r} lacks the {scope.value} scope")
        return principal


def _store(client: Client) -> None:
    events = [make_event(i, trace_id=f"trace-{i // 10}") for i in range(60)]
    events += [make_event(100 + i, app="sales-bot", model="claude-sonnet-4", provider="anthropic",
                          status="error", error_type="rate_limit", prompt_version="v7") for i in range(15)]
    result = EventValidator(prices=PriceCatalog()).validate(
        [RawItem(i, e, None) for i, e in enumerate(events)], source="test", source_ref="events-api"
    )
    assert not result.rejections, result.rejections[:3]
    ClickHouseEventStore(client).write_events(result.batch)


@pytest.fixture()
def api(store_client: Client) -> Iterator[TestClient]:
    _store(store_client)
    service = build_ingest_service(Settings(_env_file=None), store_client)  # type: ignore[call-arg]
    app = create_app(service, authenticator=TableAuthenticator())
    app.state.event_queries = ClickHouseEventQueries(store_client)
    with TestClient(app) as client:
        yield client


def _get(api: TestClient, key: str, **params: object) -> dict[str, object]:
    response = api.get("/v1/events", params=params, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_filters_newest_first_without_texts_by_default(api: TestClient) -> None:
    body = _get(api, "reader", app="sales-bot", status="error", limit=100)
    events = body["events"]
    assert isinstance(events, list) and body["count"] == len(events) == 15
    assert {e["app"] for e in events} == {"sales-bot"} and {e["error_type"] for e in events} == {"rate_limit"}
    times = [e["start_time"] for e in events]
    assert times == sorted(times, reverse=True) and times[0].endswith("Z")
    assert "input_text" not in events[0] and body["next_cursor"] is None
    [one] = _get(api, "reader", event_id="evt-000007", with_text="true")["events"]  # type: ignore[misc]
    assert one["input_text"] == "How do I reset my password?" and one["trace_id"] == "trace-0"
    assert len(_get(api, "reader", trace_id="trace-3")["events"]) == 10  # type: ignore[arg-type]
    assert len(_get(api, "reader", model="claude-sonnet-4", prompt_version="v7")["events"]) == 15  # type: ignore[arg-type]
    window = _get(api, "reader", app="support-bot", since="2026-11-20T10:00:10Z", until="2026-11-20T10:00:20Z")
    assert [e["event_id"] for e in window["events"]] == [f"evt-{i:06d}" for i in range(19, 9, -1)]  # type: ignore[union-attr]


def test_cursor_pages_cover_everything_once(api: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        body = _get(api, "reader", **params)
        seen += [e["event_id"] for e in body["events"]]  # type: ignore[union-attr]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert pages == 11 and len(seen) == len(set(seen)) == 75


def test_keys_bound_to_apps_read_only_their_apps(api: TestClient) -> None:
    body = _get(api, "support-reader", limit=1000)
    assert {e["app"] for e in body["events"]} == {"support-bot"}  # type: ignore[union-attr]
    assert body["count"] == 60
    refused = api.get("/v1/events", params={"app": "sales-bot"}, headers={"Authorization": "Bearer support-reader"})
    assert refused.status_code == 403 and "sales-bot" in refused.json()["detail"]


def test_scope_and_bad_input(api: TestClient) -> None:
    assert api.get("/v1/events").status_code == 401
    assert api.get("/v1/events", headers={"Authorization": "Bearer ingester"}).status_code == 403
    headers = {"Authorization": "Bearer reader"}
    assert api.get("/v1/events", params={"status": "broken"}, headers=headers).status_code == 422
    assert api.get("/v1/events", params={"limit": 0}, headers=headers).status_code == 422
    bad_cursor = api.get("/v1/events", params={"cursor": "%%%"}, headers=headers)
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]
    backwards = api.get("/v1/events", params={"since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"},
                        headers=headers)
    assert backwards.status_code == 400
