"""Without an Alertmanager, alerts are still recorded in ClickHouse and shown by `llmpulse alerts`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from rich.console import Console
from typer.testing import CliRunner

from alerts.dispatcher import AlertDispatcher
from alerts.from_findings import EngineFindingsSource
from alerts.history import ClickHouseAlertHistory
from alerts.model import AlertState, AlertStatus
from alerts.payload import AlertLinks
from analyzers.engine import ClickHouseFindingStore, Engine
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity
from llmpulse.clickhouse import connect
from llmpulse.commands.alerts import render_alerts
from llmpulse.migrate import migrate
from llmpulse.settings import get_settings

pytestmark = pytest.mark.integration

LINKS = AlertLinks("http://llmpulse.test:8080", "http://llmpulse.test:8080/runbooks", "http://grafana.test:3000")


def _state(labels: dict[str, str], *, started: datetime, finding_id: str) -> AlertState:
    return AlertState(
        alertname=AlertName.LATENCY_REGRESSION, severity=Severity.WARNING, labels=labels,
        status=AlertStatus.FIRING, started_at=started, finding_id=finding_id, value=2400.0, baseline=950.0,
        threshold=1900.0,
    )


def test_transitions_are_recorded_once_and_survive_a_restart(store_client: Client) -> None:
    history = ClickHouseAlertHistory(store_client)
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    state = _state({"provider": "anthropic", "model": "claude-sonnet-4-20250514"}, started=started,
                   finding_id="f-lat-1")
    dispatcher = AlertDispatcher([], LINKS, history=history)
    assert dispatcher.dispatch([state]) == [state]
    assert dispatcher.dispatch([state]) == []  # the next analyzer run reports the same firing finding
    [current] = history.current()
    assert (current.status, current.alertname, current.started_at) == ("firing", "LLMLatencyRegression", started)
    assert current.labels == {"provider": "anthropic", "model": "claude-sonnet-4-20250514"}
    assert "2,400 ms" in current.description and "usually 950 ms" in current.description
    assert current.runbook_url == "http://llmpulse.test:8080/runbooks/LLMLatencyRegression.md"
    assert current.generator_url == "http://llmpulse.test:8080/v1/findings/f-lat-1"

    resolved_at = started + timedelta(minutes=25)
    dispatcher.dispatch([state.resolve(resolved_at)])
    # A restarted llmpulse re-dispatches what it knows: the same transitions collapse in the history.
    restarted = AlertDispatcher([], LINKS, history=history)
    restarted.dispatch([state.resolve(resolved_at)])
    [current] = history.current()
    assert (current.status, current.resolved_at) == ("resolved", resolved_at)
    assert [t.status for t in history.transitions()] == ["resolved", "firing"]

    again = _state(dict(state.labels), started=started + timedelta(hours=1), finding_id="f-lat-2")
    restarted.dispatch([again])
    assert [(r.status, r.finding_id) for r in history.current()] == [("firing", "f-lat-2")]
    assert len(history.transitions()) == 3
    assert history.current(resolved_since=datetime.now(UTC)) == history.current()


def test_history_write_failure_is_retried_on_the_next_dispatch(store_client: Client) -> None:
    class FlakyHistory(ClickHouseAlertHistory):
        fail = True

        def record(self, records):
            if self.fail:
                raise ConnectionError("ClickHouse is restarting")
            super().record(records)

    history = FlakyHistory(store_client)
    dispatcher = AlertDispatcher([], LINKS, history=history)
    state = _state({"provider": "openai", "model": "gpt-4o"}, started=datetime.now(UTC), finding_id="f-1")
    dispatcher.dispatch([state])
    assert history.current() == []
    assert dispatcher.metrics.history_failures._value.get() == 1
    history.fail = False
    dispatcher.dispatch([])
    assert [r.finding_id for r in history.current()] == ["f-1"]


def test_render_shows_firing_first_with_runbook(store_client: Client) -> None:
    history = ClickHouseAlertHistory(store_client)
    now = datetime.now(UTC)
    dispatcher = AlertDispatcher([], LINKS, history=history)
    old = _state({"provider": "mistral"}, started=now - timedelta(hours=3), finding_id="f-old")
    dispatcher.dispatch([old.resolve(now - timedelta(hours=2)),
                         _state({"provider": "openai"}, started=now - timedelta(minutes=75), finding_id="f-new")])
    console = Console(record=True, width=250)
    render_alerts(console, history.current(), now=now, title="Alerts")
    text = console.export_text()
    assert text.index("provider=openai") < text.index("provider=mistral")  # firing first
    assert "provider=openai" in text and "(1h15m)" in text
    assert "http://llmpulse.test:8080/runbooks/LLMLatencyRegression.md" in text


class ScriptedOutage:
    name: str = "outage"
    alertnames: tuple[AlertName, ...] = (AlertName.PROVIDER_OUTAGE,)
    interval: timedelta = timedelta(minutes=1)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:  # driven through Engine.apply instead
        raise NotImplementedError


def test_a_restarted_llmpulse_catches_up_from_the_findings_table(store_client: Client) -> None:
    engine = Engine(ClickHouseFindingStore(store_client))
    source = EngineFindingsSource(ClickHouseFindingStore(store_client))
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    observation = Observation(
        alertname=AlertName.PROVIDER_OUTAGE, severity=Severity.CRITICAL,
        labels={"provider": "google", "model": "gemini-2.0-flash", "environment": "prod"}, at=t0, value=0.9,
        baseline=0.01, threshold=0.5, summary="google/gemini-2.0-flash is failing", for_duration=timedelta(minutes=5),
    )
    engine.apply(ScriptedOutage(), AnalyzerResult([observation]), t0)
    assert source.active() == []  # pending: not an alert
    engine.apply(ScriptedOutage(), AnalyzerResult([observation]), t0 + timedelta(minutes=5))

    history = ClickHouseAlertHistory(store_client)
    first = AlertDispatcher([], LINKS, history=history)
    [firing] = first.sync(source)
    assert firing.firing and firing.started_at == t0 + timedelta(minutes=5)
    assert firing.fingerprint == ClickHouseFindingStore(store_client).firing()[0].fingerprint

    engine.apply(ScriptedOutage(), AnalyzerResult([]), t0 + timedelta(minutes=20))
    after_restart = AlertDispatcher([], LINKS, history=history)  # knows nothing, reads the findings
    [resolved] = after_restart.sync(source)
    assert resolved.status is AlertStatus.RESOLVED and resolved.resolved_at == t0 + timedelta(minutes=20)
    assert [(r.status, r.finding_id) for r in history.current()] == [("resolved", firing.finding_id)]
    assert after_restart.sync(source) == []


@pytest.fixture()
def cli_store(chdb_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The CLI opens the configured store's default database (on this session's chDB path)."""
    monkeypatch.setenv("LLMPULSE_CLICKHOUSE_URL", chdb_url)
    monkeypatch.delenv("LLMPULSE_ALERTMANAGER_URL", raising=False)
    get_settings.cache_clear()
    client = connect(chdb_url)
    migrate(client)
    yield client
    get_settings.cache_clear()


def test_llmpulse_alerts_prints_what_was_recorded(cli_store: Client) -> None:
    from llmpulse.cli import app
    from llmpulse.commands import register_all

    marker = f"app-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    dispatcher = AlertDispatcher([], LINKS, history=ClickHouseAlertHistory(cli_store))
    dispatcher.dispatch([AlertState(
        alertname=AlertName.TRAFFIC_ABSENT, severity=Severity.CRITICAL, labels={"app": marker},
        status=AlertStatus.FIRING, started_at=now - timedelta(minutes=12), finding_id=f"f-{marker}",
        value=0.0, baseline=42.0,
    )])
    register_all(app)
    runner = CliRunner()
    result = runner.invoke(app, ["alerts"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "LLMTrafficAbsent" in result.output and marker in result.output
    assert "nobody is notified" in result.output

    result = runner.invoke(app, ["alerts", "--json", "--history", "--since", "1h"], catch_exceptions=False)
    rows = [orjson.loads(line) for line in result.output.splitlines() if line.strip()]
    mine = [r for r in rows if r["labels"].get("app") == marker]
    assert [(r["alertname"], r["status"], r["finding_id"]) for r in mine] == [
        ("LLMTrafficAbsent", "firing", f"f-{marker}")
    ]

    result = runner.invoke(app, ["alerts", "--since", "soon"])
    assert result.exit_code == 2 and "--since" in result.output

    result = runner.invoke(app, ["alerts", "--check"], catch_exceptions=False)
    assert result.exit_code == 0 and "not set" in result.output
