"""`llmpulse serve` as users run it: one process with the API, findings, runbooks, analyzers and alerting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.events import make_event
from tests.support.processes import alive, children
from tests.support.serve_process import running_serve, start_serve


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    env = {
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "LLMPULSE_INGEST_WORKERS": "1",
        "LLMPULSE_ALERTMANAGER_URL": "",
    }
    with running_serve(tmp_path, env) as base:
        yield base


def test_one_process_serves_ingest_findings_runbooks_and_metrics(server: str) -> None:
    events = [make_event(i) for i in range(50)]
    posted = httpx.post(f"{server}/v1/events", content=orjson.dumps(events), timeout=30)
    assert posted.status_code == 200 and posted.json()["accepted"] == 50

    findings = httpx.get(f"{server}/v1/findings", timeout=30)
    assert findings.status_code == 200 and isinstance(findings.json(), list | dict)

    runbook = httpx.get(f"{server}/runbooks/LLMProviderOutage.md", timeout=10)
    assert runbook.status_code == 200 and "LLMProviderOutage" in runbook.text

    metrics = httpx.get(f"{server}/metrics", timeout=10).text
    assert 'llmpulse_events_accepted_total{source="http"} 50.0' in metrics
    assert "llmpulse_alert" in metrics  # alert delivery reports on the same endpoint

    paths = httpx.get(f"{server}/openapi.json", timeout=10).json()["paths"]
    assert {"/v1/events", "/v1/traces", "/v1/findings"} <= set(paths)


def test_validation_workers_do_not_outlive_a_killed_server(tmp_path: Path) -> None:
    env = {"LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}", "LLMPULSE_INGEST_WORKERS": "2",
           "LLMPULSE_ALERTMANAGER_URL": ""}
    process, base = start_serve(tmp_path, env)
    try:
        assert httpx.post(f"{base}/v1/events", content=orjson.dumps([make_event(1)]), timeout=30).status_code == 200
        workers = children(process.pid)
        assert len(workers) >= 2, workers
    finally:
        process.kill()  # as the OOM killer or a node failure would
        process.wait(30)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "validation workers outlived the server killed with SIGKILL"
