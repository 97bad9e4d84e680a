"""llmpulse → a real Alertmanager (Debian's prometheus-alertmanager) running the shipped routing config.

Alerts go through AlertDispatcher and AlertmanagerClient over HTTP; what a person would get arrives at a
local webhook receiver that stands in for PagerDuty/Slack/tickets (receiver name = shipped receiver).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client
from prometheus_client import generate_latest

from alerts.dispatcher import AlertDispatcher
from alerts.from_findings import EngineFindingsSource, alert_state_from_observation, findings_listener
from alerts.metrics import AlertMetrics
from alerts.model import AlertState, AlertStatus
from alerts.payload import AlertLinks
from alerts.sender import AlertmanagerClient
from analyzers.engine import ClickHouseFindingStore, Engine
from analyzers.errors import OutageAnalyzer
from analyzers.findings import AlertName, AnalysisContext, Observation, Severity
from analyzers.rules import Rules
from collector.pricing import PriceCatalog
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, RawItem
from llmpulse.simulate import Incident, SimulationConfig, generate, ground_truth, parse_duration
from tests.support.alertmanager import AlertmanagerFactory, AlertmanagerServer
from tests.support.webhook_receiver import WebhookReceiver, alert_matches

pytestmark = pytest.mark.integration

LINKS = AlertLinks(
    public_base_url="http://llmpulse.test:8080",
    runbook_base_url="http://llmpulse.test:8080/runbooks",
    dashboard_base_url="http://grafana.test:3000",
)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def make_dispatcher(*servers: AlertmanagerServer, metrics: AlertMetrics | None = None) -> AlertDispatcher:
    """Prometheus' contract at test speed: resend every second, retry quickly."""
    return AlertDispatcher(
        [AlertmanagerClient(s.url, timeout=2.0) for s in servers],
        LINKS,
        resend_interval=timedelta(seconds=1),
        resolved_retention=timedelta(seconds=30),
        retry_initial=timedelta(milliseconds=100),
        retry_max=timedelta(milliseconds=400),
        metrics=metrics,
    )


def wait_delivered(dispatcher: AlertDispatcher, timeout: float = 10.0) -> None:
    """Until every Alertmanager has accepted the latest state of every alert."""
    deadline = time.monotonic() + timeout
    while any(s.undelivered for s in dispatcher.status()):
        assert time.monotonic() < deadline, f"not delivered in {timeout}s: {dispatcher.status()}"
        time.sleep(0.05)


@pytest.fixture()
def dispatchers() -> Iterator[list[AlertDispatcher]]:
    made: list[AlertDispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.stop(flush_timeout=0)


def firing(
    alertname: AlertName, severity: Severity, labels: dict[str, str], *, finding_id: str, minutes_ago: int = 5,
    value: float | None = None, baseline: float | None = None,
) -> AlertState:
    return AlertState(
        alertname=alertname, severity=severity, labels=labels, status=AlertStatus.FIRING,
        started_at=_now() - timedelta(minutes=minutes_ago), finding_id=finding_id, value=value, baseline=baseline,
    )


def _load_simulation(client: Client, config: SimulationConfig) -> int:
    """Simulated events through the collector's real validator and writer (the rollups fill on insert)."""
    validator, sink = EventValidator(prices=PriceCatalog()), ClickHouseEventStore(client)
    events = list(generate(config))
    for begin in range(0, len(events), 20_000):
        chunk = events[begin : begin + 20_000]
        result = validator.validate([RawItem(i, e, None) for i, e in enumerate(chunk)], source="test", source_ref="sim")
        assert not result.rejections, result.rejections[:3]
        sink.write_events(result.batch)
    return len(events)


def test_simulated_outage_through_the_real_analyzer_pages_then_resolves(
    store_client: Client, alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver,
    dispatchers: list[AlertDispatcher],
) -> None:
    """Simulator → ClickHouse → OutageAnalyzer → findings Engine → AlertDispatcher → Alertmanager → webhook."""
    start = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    outage = Incident(id="outage-1", kind="provider_outage", start=start + timedelta(hours=4),
                      end=start + timedelta(hours=4, minutes=30), labels={"provider": "anthropic"})
    config = SimulationConfig(start=start, duration=timedelta(hours=5), seed=3, incidents=[outage], text=False)
    assert _load_simulation(store_client, config) > 5_000

    dispatcher = make_dispatcher(alertmanager)
    dispatchers.append(dispatcher)
    dispatcher.start(EngineFindingsSource(ClickHouseFindingStore(store_client)))  # as `llmpulse serve` wires it
    engine = Engine(ClickHouseFindingStore(store_client), listeners=[findings_listener(dispatcher)])
    analyzer = OutageAnalyzer()

    def run(minutes_into_incident: int) -> None:
        at = outage.start + timedelta(minutes=minutes_into_incident)
        report = engine.run(analyzer, AnalysisContext(client=store_client, at=at, rules=Rules()))
        assert report.error is None, report.error

    run(5)  # no `for` hold: the first run whose evidence suffices fires the finding
    page = webhook_receiver.wait_for(alert_matches("LLMProviderOutage", status="firing"), what="outage page")
    [finding] = ClickHouseFindingStore(store_client).firing()
    assert page.receiver == "llm-oncall-page"
    assert page.labels == {
        "alertname": "LLMProviderOutage", "severity": "critical", "service": "llmpulse", "environment": "prod",
        "provider": "anthropic", "model": "claude-sonnet-4-20250514",
    }
    notes = page.annotations
    assert notes["summary"] == finding.observation.summary
    assert notes["summary"].startswith("anthropic/claude-sonnet-4-20250514 is failing")
    assert f"Share of failed calls now: {finding.observation.value:.1%}" in notes["description"]
    assert "Evidence: " in notes["description"] and "calls to claude-sonnet-4-20250514" in notes["description"]
    assert notes["runbook_url"] == "http://llmpulse.test:8080/runbooks/LLMProviderOutage.md"
    assert notes["dashboard_url"].startswith(
        "http://grafana.test:3000/d/llmpulse-reliability/llm-reliability?orgId=1&viewPanel=2&"
    )
    assert page.alert["generatorURL"] == f"http://llmpulse.test:8080/v1/findings/{finding.finding_id}"
    assert datetime.fromisoformat(page.alert["startsAt"].replace("Z", "+00:00")) == outage.start + timedelta(minutes=5)

    # Still failing; then the outage is over (it ended at minute 30) and the finding was last seen at
    # minute 20, so the run at minute 40 is past its 10-minute keep_firing_for and resolves it.
    for minute in (10, 20, 40):
        run(minute)
    # The outage is provider-wide: the quieter claude-3-5-haiku-latest fires too, once its window has widened
    # (window_ladder) far enough to hold `min_requests` calls. Both resolve in the same run.
    sonnet, haiku = "claude-sonnet-4-20250514", "claude-3-5-haiku-latest"
    tracked = {s.labels["model"]: s for s in dispatcher.tracked()}
    assert sorted(tracked) == sorted([sonnet, haiku])
    assert all(s.status is AlertStatus.RESOLVED and s.labels["provider"] == "anthropic" for s in tracked.values())
    assert tracked[sonnet].finding_id == finding.finding_id
    wait_delivered(dispatcher)
    alertmanager.wait_for_alerts(lambda alerts: not alerts, what="outage gone", alertname="LLMProviderOutage")
    resolved = webhook_receiver.wait_for(alert_matches("LLMProviderOutage", status="resolved", model=sonnet),
                                         what="resolution")
    assert resolved.receiver == "llm-oncall-page"
    assert datetime.fromisoformat(resolved.alert["endsAt"].replace("Z", "+00:00")) == \
        outage.start + timedelta(minutes=40)
    # One episode: the group's later notifications (haiku joining it) repeat the same sonnet alert, never a new one.
    pages = webhook_receiver.received(alert_matches("LLMProviderOutage", status="firing", model=sonnet))
    assert {(p.alert["startsAt"], p.alert["generatorURL"]) for p in pages} == \
        {(page.alert["startsAt"], page.alert["generatorURL"])}


def test_cost_incident_from_ground_truth_pages_with_labels_annotations_and_then_resolves(
    alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver, dispatchers: list[AlertDispatcher]
) -> None:
    # The incident comes from the simulator's ground truth; the Observation is shaped like the cost
    # analyzer's, with numbers chosen so every annotation can be checked exactly.
    now = _now()
    config = SimulationConfig(start=now - timedelta(days=1), duration=parse_duration("1d"), seed=7)
    incident = next(item for item in ground_truth(config) if item["kind"] == "cost_spike")
    began = datetime.fromisoformat(incident["start"].replace("Z", "+00:00"))
    ended = datetime.fromisoformat(incident["end"].replace("Z", "+00:00"))
    labels = {**incident["labels"], "environment": "production"}
    observation = Observation(
        alertname=AlertName(incident["expected_alertname"]),
        severity=Severity.CRITICAL,
        labels=labels,
        at=began + timedelta(minutes=10),
        value=0.0412,
        baseline=0.0103,
        threshold=0.0206,
        summary="Cost per request of support-bot/summarize-ticket is 4× its baseline",
        evidence="Input tokens per request rose from 1,900 to 7,600",
    )
    state = alert_state_from_observation(observation, finding_id="f-cost-0001", started_at=began + timedelta(minutes=5))

    dispatcher = make_dispatcher(alertmanager)
    dispatchers.append(dispatcher)
    dispatcher.start()
    dispatcher.dispatch([state])

    page = webhook_receiver.wait_for(
        alert_matches("LLMCostSpike", status="firing", app="support-bot"), what="firing LLMCostSpike"
    )
    assert page.receiver == "llm-oncall-page"  # critical pages
    assert page.labels == {
        "alertname": "LLMCostSpike", "severity": "critical", "service": "llmpulse",
        "app": "support-bot", "feature": "summarize-ticket", "environment": "production",
    }
    notes = page.annotations
    assert notes["summary"] == observation.summary
    assert "$0.0412" in notes["description"] and "$0.0103" in notes["description"]
    assert "4.0× the usual" in notes["description"]
    assert "Input tokens per request rose" in notes["description"]
    assert notes["runbook_url"] == "http://llmpulse.test:8080/runbooks/LLMCostSpike.md"
    assert notes["dashboard_url"].startswith("http://grafana.test:3000/d/llmpulse-cost/llm-cost?orgId=1&viewPanel=7&")
    assert "var-app=support-bot" in notes["dashboard_url"]
    assert page.alert["generatorURL"] == "http://llmpulse.test:8080/v1/findings/f-cost-0001"
    assert datetime.fromisoformat(page.alert["startsAt"].replace("Z", "+00:00")) == state.started_at

    dispatcher.dispatch([state.resolve(ended)])
    resolved = webhook_receiver.wait_for(
        alert_matches("LLMCostSpike", status="resolved", app="support-bot"), what="resolved LLMCostSpike"
    )
    assert resolved.receiver == "llm-oncall-page"
    assert datetime.fromisoformat(resolved.alert["endsAt"].replace("Z", "+00:00")) == ended
    alertmanager.wait_for_alerts(lambda alerts: not alerts, what="cost alert gone", alertname="LLMCostSpike")


def test_provider_outage_inhibits_latency_and_errors_of_the_same_app_until_it_resolves(
    alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver, dispatchers: list[AlertDispatcher]
) -> None:
    dispatcher = make_dispatcher(alertmanager)
    dispatchers.append(dispatcher)
    dispatcher.start()
    outage = firing(AlertName.PROVIDER_OUTAGE, Severity.CRITICAL, {"app": "support-bot", "provider": "anthropic"},
                    finding_id="f-outage")
    dispatcher.dispatch([outage])
    alertmanager.wait_for_alerts(lambda alerts: len(alerts) == 1, what="outage held", alertname="LLMProviderOutage")

    model = "claude-sonnet-4-20250514"
    same_app = firing(AlertName.LATENCY_REGRESSION, Severity.WARNING,
                      {"app": "support-bot", "provider": "anthropic", "model": model}, finding_id="f-lat-1")
    other_app = firing(AlertName.LATENCY_REGRESSION, Severity.WARNING,
                       {"app": "search-rag", "provider": "anthropic", "model": model}, finding_id="f-lat-2")
    app_errors = firing(AlertName.ERROR_RATE_HIGH, Severity.WARNING, {"app": "support-bot"}, finding_id="f-err")
    other_provider = firing(AlertName.LATENCY_REGRESSION, Severity.WARNING,
                            {"app": "support-bot", "provider": "openai", "model": "gpt-4o"}, finding_id="f-lat-3")
    dispatcher.dispatch([same_app, other_app, app_errors, other_provider])

    webhook_receiver.wait_for(alert_matches("LLMProviderOutage", status="firing", receiver="llm-oncall-page"))
    webhook_receiver.wait_for(alert_matches("LLMLatencyRegression", status="firing", app="search-rag",
                                            receiver="llm-tickets"), what="latency of another app")
    webhook_receiver.wait_for(alert_matches("LLMLatencyRegression", status="firing", provider="openai"),
                              what="latency on another provider of the same app")
    for labels in ({"alertname": "LLMLatencyRegression", "app": "support-bot", "provider": "anthropic"},
                   {"alertname": "LLMErrorRateHigh", "app": "support-bot"}):
        held = alertmanager.alerts(**labels)
        assert len(held) == 1, held
        assert held[0]["status"]["state"] == "suppressed" and held[0]["status"]["inhibitedBy"], held[0]
    time.sleep(0.5)  # a few group intervals: nothing suppressed may leak through
    assert not webhook_receiver.received(alert_matches("LLMLatencyRegression", app="support-bot", provider="anthropic"))
    assert not webhook_receiver.received(alert_matches("LLMErrorRateHigh"))

    # The outage ends: the alerts it hid reach people.
    dispatcher.dispatch([outage.resolve(_now())])
    webhook_receiver.wait_for(alert_matches("LLMLatencyRegression", status="firing", app="support-bot",
                                            provider="anthropic"), what="latency after the outage resolved")
    webhook_receiver.wait_for(alert_matches("LLMErrorRateHigh", status="firing", app="support-bot"))


def test_silence_created_in_alertmanager_suppresses_delivery_across_restarts(
    alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver, dispatchers: list[AlertDispatcher]
) -> None:
    silence_id = alertmanager.create_silence({"alertname": "LLMCostSpike", "app": "support-bot"},
                                             comment="known: batch re-summarisation job")
    silenced = firing(AlertName.COST_SPIKE, Severity.WARNING, {"app": "support-bot", "feature": "answer"},
                      finding_id="f-cost-sb", value=0.02, baseline=0.005)
    control = firing(AlertName.COST_SPIKE, Severity.WARNING, {"app": "search-rag", "feature": "synthesize"},
                     finding_id="f-cost-rag", value=0.02, baseline=0.005)
    first = make_dispatcher(alertmanager)
    dispatchers.append(first)
    first.dispatch([silenced, control])
    assert first.flush(timeout=5)

    webhook_receiver.wait_for(alert_matches("LLMCostSpike", status="firing", app="search-rag"), what="control")
    held = alertmanager.alerts(alertname="LLMCostSpike", app="support-bot")
    assert len(held) == 1 and held[0]["status"]["silencedBy"] == [silence_id], held
    fingerprint = held[0]["fingerprint"]

    # llmpulse and Alertmanager both restart; the same finding maps to the same alert, still silenced.
    first.stop(flush_timeout=0)
    alertmanager.stop()
    alertmanager.start()
    second = make_dispatcher(alertmanager)
    dispatchers.append(second)
    second.dispatch([silenced, control])
    assert second.flush(timeout=5)
    held = alertmanager.alerts(alertname="LLMCostSpike", app="support-bot")
    assert [a["fingerprint"] for a in held] == [fingerprint]
    assert held[0]["status"]["silencedBy"] == [silence_id]
    time.sleep(0.5)
    assert not webhook_receiver.received(alert_matches("LLMCostSpike", app="support-bot"))


def test_alertmanager_down_while_an_alert_fires_and_resolves_ends_in_the_right_state(
    alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver, dispatchers: list[AlertDispatcher]
) -> None:
    metrics = AlertMetrics()
    dispatcher = make_dispatcher(alertmanager, metrics=metrics)
    dispatchers.append(dispatcher)
    dispatcher.start()
    errors = firing(AlertName.ERROR_RATE_HIGH, Severity.WARNING, {"app": "code-assistant"}, finding_id="f-err-1")
    dispatcher.dispatch([errors])
    webhook_receiver.wait_for(alert_matches("LLMErrorRateHigh", status="firing"), what="first firing")
    alertmanager.wait_for_notification_logged("llm-tickets")

    alertmanager.stop()
    # While Alertmanager is down the error burst ends and a traffic drop starts and is still firing.
    dispatcher.dispatch([errors.resolve(_now())])
    absent = firing(AlertName.TRAFFIC_ABSENT, Severity.CRITICAL, {"app": "search-rag"}, finding_id="f-absent",
                    minutes_ago=1)
    dispatcher.dispatch([absent])
    deadline = time.monotonic() + 10
    while dispatcher.status()[0].consecutive_failures < 2:
        assert time.monotonic() < deadline, dispatcher.status()
        time.sleep(0.05)
    exposition = generate_latest(metrics.registry).decode()
    assert f'llmpulse_alertmanager_send_failures_total{{alertmanager="{alertmanager.url}",reason="unreachable"}}' \
        in exposition
    assert f'llmpulse_alertmanager_undelivered_alerts{{alertmanager="{alertmanager.url}"}} 2.0' in exposition

    alertmanager.start()  # same port and storage, no alerts in memory
    alertmanager.wait_for_alerts(lambda alerts: len(alerts) == 1, what="traffic alert back",
                                 alertname="LLMTrafficAbsent")
    assert alertmanager.alerts(alertname="LLMErrorRateHigh") == []
    webhook_receiver.wait_for(alert_matches("LLMTrafficAbsent", status="firing", receiver="llm-oncall-page"))
    # Alertmanager's notification log survived the restart: the resolution still reaches people.
    webhook_receiver.wait_for(alert_matches("LLMErrorRateHigh", status="resolved"), what="resolution after restart")
    wait_delivered(dispatcher)
    assert dispatcher.status()[0].consecutive_failures == 0


def test_ha_pair_gets_every_alert_and_a_down_member_catches_up(
    alertmanager_factory: AlertmanagerFactory, webhook_receiver: WebhookReceiver,
    dispatchers: list[AlertDispatcher],
) -> None:
    first, second = alertmanager_factory(), alertmanager_factory()
    dispatcher = make_dispatcher(first, second)
    dispatchers.append(dispatcher)
    dispatcher.start()
    drift = firing(AlertName.INPUT_DRIFT, Severity.INFO, {"app": "support-bot", "feature": "answer"},
                   finding_id="f-drift")
    dispatcher.dispatch([drift])
    for server in (first, second):
        server.wait_for_alerts(lambda alerts: len(alerts) == 1, what="drift alert", alertname="LLMInputDrift")
    info = webhook_receiver.wait_for(alert_matches("LLMInputDrift", status="firing"))
    assert info.receiver == "llm-info"

    second.stop()
    dispatcher.dispatch([drift.resolve(_now())])
    first.wait_for_alerts(lambda alerts: not alerts, what="drift resolved", alertname="LLMInputDrift")
    assert dispatcher.status()[1].undelivered == 1
    second.start()
    wait_delivered(dispatcher)  # the resolution reached the restarted member too
