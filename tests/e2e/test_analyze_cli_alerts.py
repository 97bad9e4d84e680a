"""`llmpulse analyze` from cron: findings become Alertmanager alerts, and the embedded history records them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from llmpulse.simulate import Incident, SimulationConfig, generate
from tests.support.alertmanager import AlertmanagerServer
from tests.support.webhook_receiver import WebhookReceiver, alert_matches


def _llmpulse(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=300, check=False,
    )


def test_analyze_runs_deliver_the_outage_page_and_record_it(
    tmp_path: Path, alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver
) -> None:
    start = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    outage = Incident(id="outage-cli", kind="provider_outage", start=start + timedelta(hours=4),
                      end=start + timedelta(hours=4, minutes=30), labels={"provider": "anthropic"})
    config = SimulationConfig(start=start, duration=timedelta(hours=5), seed=3, incidents=[outage], text=False)
    events_file = tmp_path / "events.ndjson"
    events_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in generate(config)))
    env = {
        **os.environ,
        "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "LLMPULSE_ALERTMANAGER_URL": alertmanager.url,
        "LLMPULSE_ANALYZERS_PLUGINS": "false",
    }
    loaded = _llmpulse(["ingest", "-q", str(events_file)], env, tmp_path)
    assert loaded.returncode == 0, loaded.stderr

    for minutes in (5, 10):  # pending, then firing once the rule's `for` has passed
        at = (outage.start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        run = _llmpulse(["analyze", "--at", at, "--every", "5m"], env, tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr

    page = webhook_receiver.wait_for(alert_matches("LLMProviderOutage", status="firing"), what="outage page")
    assert page.labels["provider"] == "anthropic" and page.labels["severity"] == "critical"
    assert page.annotations["summary"].startswith("anthropic/")

    history = _llmpulse(["alerts", "--json"], env, tmp_path)
    assert history.returncode == 0, history.stderr
    assert "LLMProviderOutage" in history.stdout
