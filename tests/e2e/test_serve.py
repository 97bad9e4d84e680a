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
from tests.support.serve_process import Served, running_serve, start_serve


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Served]:
    env = {
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "LLMPULSE_INGEST_WORKERS": "1",
        "LLMPULSE_ALERTMANAGER_URL": "",
    }
    with running_serve(tmp_path, env) as served:
        yield served


def test_one_process_serves_ingest_findings_runbooks_and_metrics(server: Served) -> None:
    base, headers = server.base, server.headers
    events = [make_event(i) for i in range(50)]
    assert httpx.post(f"{base}/v1/events", content=orjson.dumps(events), timeout=30).status_code == 401
    posted = httpx.post(f"{base}/v1/events", content=orjson.dumps(events), headers=headers, timeout=30)
    assert posted.status_code == 200 and posted.json()["accepted"] == 50

    findings = httpx.get(f"{base}/v1/findings", headers=headers, timeout=30)
    assert findings.status_code == 200 and isinstance(findings.json(), list | dict)

    runbook = httpx.get(f"{base}/runbooks/LLMProviderOutage.md", headers=headers, timeout=10)
    assert runbook.status_code == 200 and "LLMProviderOutage" in runbook.text

    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
    metrics = httpx.get(f"{base}/metrics", headers=headers, timeout=10).text
    assert 'llmpulse_events_accepted_total{source="http"} 50.0' in metrics
    assert "llmpulse_alert" in metrics  # alert delivery reports on the same endpoint

    paths = httpx.get(f"{base}/openapi.json", headers=headers, timeout=10).json()["paths"]
    assert {"/v1/events", "/v1/traces", "/v1/findings"} <= set(paths)
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200  # probes need no key


def test_validation_workers_do_not_outlive_a_killed_server(tmp_path: Path) -> None:
    env = {"LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}", "LLMPULSE_INGEST_WORKERS": "2",
           "LLMPULSE_ALERTMANAGER_URL": ""}
    served = start_serve(tmp_path, env)
    process = served.process
    try:
        posted = httpx.post(f"{served.base}/v1/events", content=orjson.dumps([make_event(1)]),
                            headers=served.headers, timeout=30)
        assert posted.status_code == 200
        workers = children(process.pid)
        assert len(workers) >= 2, workers
    finally:
        process.kill()  # as the OOM killer or a node failure would
        process.wait(30)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "validation workers outlived the server killed with SIGKILL"
