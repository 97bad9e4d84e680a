"""POST /v1/events against the real embedded ClickHouse: per-item reasons, dead letters, idempotent re-posts."""

from __future__ import annotations

import gzip
import logging
import os
import signal
import time
from collections.abc import Iterator

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from collector.api.app import create_app
from collector.auth import AllowAll
from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.pricing import PriceCatalog
from collector.service import IngestService
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, IngestLimits
from collector.validation_pool import ValidationPool
from tests.support.events import make_event


def _api(store_client: Client, pool: ValidationPool | None) -> Iterator[TestClient]:
    metrics = IngestMetrics()
    service = IngestService(
        validator=EventValidator(prices=PriceCatalog()),
        inserter=BulkInserter(ClickHouseEventStore(store_client), max_rows=5_000, max_delay_s=0.05, metrics=metrics),
        metrics=metrics,
        pool=pool,
    )
    with TestClient(create_app(service, max_body_bytes=8 * 1024 * 1024, authenticator=AllowAll())) as client:
        yield client


@pytest.fixture()
def api(store_client: Client) -> Iterator[TestClient]:
    yield from _api(store_client, None)


@pytest.fixture()
def pooled_api(store_client: Client) -> Iterator[TestClient]:
    """The production configuration: request bodies validated in a worker process."""
    yield from _api(store_client, ValidationPool(processes=1, limits=IngestLimits()))


def _ndjson(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def _mixed_batch() -> bytes:
    valid = [orjson.dumps(make_event(i)) for i in range(5)]
    no_model = make_event(100)
    del no_model["model"]
    bad_time = make_event(101, start_time="2026-13-45 25:00")
    huge = make_event(102, input="x" * (2 * 1024 * 1024))
    return _ndjson(
        [
            valid[0],
            orjson.dumps(no_model),
            valid[1],
            orjson.dumps(bad_time),
            b'{"event_id": "broken", "app": ',
            valid[2],
            orjson.dumps(huge),
            valid[3],
            valid[4],
        ]
    )


def _totals(client: Client) -> tuple[int, float]:
    count, cost = client.query("SELECT count(), sum(cost_usd) FROM events").result_rows[0]
    return int(count), float(cost)


def test_mixed_batch_reports_each_bad_item_and_stores_the_good_ones(api: TestClient, store_client: Client) -> None:
    response = api.post("/v1/events", content=_mixed_batch(), headers={"content-type": "application/x-ndjson"})

    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 5 and body["rejected"] == 4
    reasons = {e["index"]: e["reason"] for e in body["errors"]}
    assert "missing required field `model`" in reasons[1]
    assert "start_time" in reasons[3] and "invalid timestamp" in reasons[3]
    assert "invalid JSON" in reasons[4] and "line 5" in reasons[4]
    assert "over the 1,048,576-byte limit" in reasons[6]

    stored = {r[0] for r in store_client.query("SELECT event_id FROM events").result_rows}
    assert stored == {f"evt-{i:06d}" for i in range(5)}
    rejected = store_client.query(
        "SELECT item_index, reason, length(payload), source FROM rejected_events ORDER BY item_index"
    ).result_rows
    assert [r[0] for r in rejected] == [1, 3, 4, 6]
    assert all(r[3] == "http" for r in rejected)
    assert rejected[3][2] > 2 * 1024 * 1024  # the oversized event is kept whole, not cut


def test_reposting_a_batch_three_times_changes_neither_traffic_nor_cost(api: TestClient, store_client: Client) -> None:
    batch = orjson.dumps([make_event(i) for i in range(200)])
    first = api.post("/v1/events", content=batch, headers={"content-type": "application/json"})
    assert first.json()["duplicates"] == 0
    before = _totals(store_client)
    assert before[0] == 200 and before[1] > 0

    for _ in range(3):
        again = api.post("/v1/events", content=batch, headers={"content-type": "application/json"})
        assert again.status_code == 200
        assert again.json()["accepted"] == 200 and again.json()["duplicates"] == 200

    # Analyzer queries read the table as it is (no FINAL): the count itself must not move.
    assert _totals(store_client) == before


def test_overlapping_batches_and_in_batch_duplicates_are_stored_once(api: TestClient, store_client: Client) -> None:
    api.post("/v1/events", content=orjson.dumps([make_event(i) for i in range(0, 60)]))
    response = api.post("/v1/events", content=orjson.dumps([make_event(i) for i in [*range(40, 100), 70, 71]]))
    assert response.json()["duplicates"] == 22
    assert _totals(store_client)[0] == 100


def test_gzip_body_single_object_and_content_type_errors(api: TestClient, store_client: Client) -> None:
    gz = gzip.compress(orjson.dumps(make_event(1)))
    ok = api.post("/v1/events", content=gz, headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert ok.status_code == 200 and ok.json()["accepted"] == 1

    wrong_type = api.post("/v1/events", content=b"a,b,c", headers={"content-type": "text/csv"})
    assert wrong_type.status_code == 415
    assert "application/x-ndjson" in wrong_type.json()["detail"]

    not_json = api.post("/v1/events", content=b"[{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    kept = store_client.query("SELECT payload FROM rejected_events WHERE item_index = -1").result_rows
    assert kept == [("[{not json",)]


def test_oversized_body_is_refused_with_413(api: TestClient) -> None:
    too_big = b"[" + b" " * (9 * 1024 * 1024) + b"]"
    response = api.post("/v1/events", content=too_big, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_all_rejected_is_422_and_unknown_fields_are_kept_in_metadata(api: TestClient, store_client: Client) -> None:
    bad = api.post("/v1/events", content=orjson.dumps([{"event_id": "x"}]))
    assert bad.status_code == 422 and bad.json()["rejected"] == 1

    extra = make_event(7, customer_tier="gold", experiment={"arm": "b"}, metadata={"region": "eu"})
    api.post("/v1/events", content=orjson.dumps([extra]))
    metadata = store_client.query("SELECT metadata FROM events WHERE event_id = 'evt-000007'").result_rows[0][0]
    assert metadata == {"region": "eu", "customer_tier": "gold", "experiment": '{"arm":"b"}'}


def test_metrics_and_health(api: TestClient) -> None:
    api.post("/v1/events", content=orjson.dumps([make_event(1), {"bad": True}]))
    assert api.get("/healthz").json()["status"] == "ok"
    text = api.get("/metrics").text
    assert 'llmpulse_events_accepted_total{source="http"} 1.0' in text
    assert 'llmpulse_events_rejected_total{source="http"} 1.0' in text
    assert "llmpulse_insert_duration_seconds_bucket" in text
    assert api.get("/docs").status_code == 200
    assert "TraceEvent" in api.get("/openapi.json").json()["components"]["schemas"]


def test_worker_process_validation_behaves_the_same(pooled_api: TestClient, store_client: Client) -> None:
    response = pooled_api.post("/v1/events", content=_mixed_batch(), headers={"content-type": "application/x-ndjson"})
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (5, 4)
    assert "missing required field `model`" in body["errors"][0]["reason"]
    batch = orjson.dumps([make_event(i) for i in range(100)])
    for _ in range(3):
        pooled_api.post("/v1/events", content=batch, headers={"content-type": "application/json"})
    assert _totals(store_client)[0] == 100
    stored = store_client.query(
        "SELECT start_time, latency_ms, metadata, input_text FROM events WHERE event_id = 'evt-000007'"
    ).result_rows[0]
    assert stored[0].isoformat().startswith("2026-11-20T10:00:07")
    assert stored[1] == 807.0 and stored[3] == "How do I reset my password?"


def test_requests_are_validated_in_process_while_no_validation_worker_is_alive(
    store_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="collector")
    pool = ValidationPool(processes=1, limits=IngestLimits())
    for api in _api(store_client, pool):
        # A first death is replaced at once; a second one within the restart interval leaves no worker alive.
        killed: list[int] = []
        for _ in range(2):
            deadline = time.monotonic() + 60
            while not (pids := [p for p in pool.worker_pids() if p not in killed]):
                assert time.monotonic() < deadline, "the pool did not replace its killed worker"
                time.sleep(0.05)
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pool.worker_pids():
            assert time.monotonic() < deadline, "the killed worker still counts as alive"
            time.sleep(0.05)

        response = api.post("/v1/events", content=_mixed_batch(), headers={"content-type": "application/x-ndjson"})

        assert response.status_code == 200
        body = response.json()
        assert (body["accepted"], body["rejected"]) == (5, 4)
        assert "missing required field `model`" in body["errors"][0]["reason"]
        assert _totals(store_client)[0] == 5
        assert any("validating it here" in r.getMessage() for r in caplog.records)


def test_event_ids_with_quotes_and_backslashes_are_still_deduplicated(api: TestClient, store_client: Client) -> None:
    odd_ids = ["it's", "back\\slash", "quote\\'mix", "ünïcødé-✓", "tab\there", "semi;colon) OR 1=1 --",
               'double"quote', "new\nline", "nul\x00byte", "emoji-🙂", "\\u0041 not an escape", "', '])) --",
               "dollar-$ids$-heredoc", "$ids$"]
    batch = orjson.dumps([make_event(i, event_id=odd) for i, odd in enumerate(odd_ids)])
    assert api.post("/v1/events", content=batch).json()["duplicates"] == 0
    assert api.post("/v1/events", content=batch).json()["duplicates"] == len(odd_ids)
    # Without an id that could close the heredoc the ids travel in, they take that route.
    plain = orjson.dumps([make_event(i, event_id=odd) for i, odd in enumerate(odd_ids) if "$ids$" not in odd])
    assert api.post("/v1/events", content=plain).json()["duplicates"] == len(odd_ids) - 2
    stored = {r[0] for r in store_client.query("SELECT event_id FROM events").result_rows}
    assert stored == set(odd_ids)
