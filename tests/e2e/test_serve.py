"""`llmpulse serve` as users run it: one process with the API, findings, runbooks, analyzers and alerting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.events import make_event


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}", "LLMPULSE_INGEST_WORKERS": "1"}
    env.pop("LLMPULSE_ALERTMANAGER_URL", None)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llmpulse.cli", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        # uvicorn re-raises SIGTERM after a graceful shutdown, so -15 is a clean exit too.
        assert process.wait(60) in (0, -15)
        log.close()
        assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()


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
