"""AlertState → Alertmanager API v2 alert: labels, annotations, times, links; and the human description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.describe import describe
from alerts.from_findings import alert_state_from_observation
from alerts.model import AlertState, AlertStateError, AlertStatus
from alerts.payload import AlertLinks, alert_labels, ends_at, label_name, to_alertmanager
from analyzers.findings import AlertName, Observation, Severity

LINKS = AlertLinks("https://llmpulse.example/", "https://wiki.example/runbooks/", "https://grafana.example")
T0 = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)


def state(**overrides: object) -> AlertState:
    values: dict[str, object] = {
        "alertname": AlertName.LATENCY_REGRESSION,
        "severity": Severity.WARNING,
        "labels": {"provider": "anthropic", "model": "claude-sonnet-4-20250514", "app": "support-bot"},
        "status": AlertStatus.FIRING,
        "started_at": T0,
        "finding_id": "f/42",
        "value": 2410.0,
        "baseline": 960.0,
        "threshold": 1900.0,
        "details": {"metric": "latency", "quantile": "p95"},
    }
    values.update(overrides)
    return AlertState(**values)  # type: ignore[arg-type]


def test_labels_are_identity_only_and_stable_while_numbers_change() -> None:
    first = to_alertmanager(state(), LINKS, now=T0, resend_interval=timedelta(minutes=1))
    later = to_alertmanager(state(value=3100.0, summary="worse"), LINKS, now=T0 + timedelta(minutes=9),
                            resend_interval=timedelta(minutes=1))
    assert first["labels"] == later["labels"] == {
        "alertname": "LLMLatencyRegression", "severity": "warning", "service": "llmpulse",
        "app": "support-bot", "provider": "anthropic", "model": "claude-sonnet-4-20250514",
    }
    assert first["annotations"]["description"] != later["annotations"]["description"]


def test_dimensions_cannot_overwrite_identity_labels_and_become_valid_label_names() -> None:
    labels = alert_labels(state(labels={"service": "billing", "drift-feature": "length", "9x": "a", "empty": ""}))
    assert labels["service"] == "llmpulse" and labels["finding_service"] == "billing"
    assert labels["drift_feature"] == "length" and labels["_9x"] == "a"
    assert "empty" not in labels
    assert label_name("app") == "app"


def test_annotations_and_links() -> None:
    alert = to_alertmanager(state(), LINKS, now=T0 + timedelta(minutes=35), resend_interval=timedelta(minutes=1))
    notes = alert["annotations"]
    assert notes["summary"] == (
        "LLM responses got slower (app=support-bot, provider=anthropic, model=claude-sonnet-4-20250514)"
    )
    assert notes["description"] == (
        "LLM responses got slower for app=support-bot, provider=anthropic, model=claude-sonnet-4-20250514. "
        "Latency p95 now: 2,410 ms (usually 960 ms, 2.5× the usual; alert threshold 1,900 ms). "
        "Firing since 2026-11-20 14:05 UTC (35 min)."
    )
    assert notes["runbook_url"] == "https://wiki.example/runbooks/LLMLatencyRegression.md"
    assert notes["dashboard_url"].startswith(
        "https://grafana.example/d/llmpulse-latency/llm-latency?orgId=1&viewPanel=2&var-app=support-bot&"
    )
    assert "to=now" in notes["dashboard_url"]
    assert (notes["value"], notes["baseline"], notes["threshold"]) == ("2410", "960", "1900")
    assert alert["generatorURL"] == "https://llmpulse.example/v1/findings/f%2F42"
    assert alert["startsAt"] == "2026-11-20T14:05:00.000Z"


def test_firing_alert_ends_four_resend_intervals_ahead_resolved_one_at_resolution() -> None:
    now = T0 + timedelta(hours=1)
    assert ends_at(state(), now=now, resend_interval=timedelta(minutes=1)) == now + timedelta(minutes=4)
    resolved = state().resolve(T0 + timedelta(minutes=50))
    assert ends_at(resolved, now=now, resend_interval=timedelta(minutes=1)) == T0 + timedelta(minutes=50)
    alert = to_alertmanager(resolved, LINKS, now=now, resend_interval=timedelta(minutes=1))
    assert alert["endsAt"] == "2026-11-20T14:55:00.000Z"
    assert "Resolved at 14:55 UTC after 50 min" in alert["annotations"]["description"]
    assert "&to=" in alert["annotations"]["dashboard_url"] and "to=now" not in alert["annotations"]["dashboard_url"]
    # Clock skew between hosts must not produce an alert Alertmanager rejects (ends before it starts).
    skewed = state().resolve(T0 - timedelta(seconds=5))
    assert ends_at(skewed, now=now, resend_interval=timedelta(minutes=1)) > T0


@pytest.mark.parametrize(
    ("alertname", "value", "baseline", "threshold", "details", "expected"),
    [
        (AlertName.COST_SPIKE, 0.0412, 0.0103, 0.0206, {"metric": "cost_per_request"},
         "Cost per request now: $0.0412 (usually $0.0103, 4.0× the usual; alert threshold $0.0206)."),
        (AlertName.COST_SPIKE, 2400, 800, None, {"metric": "tokens_per_request"},
         "Tokens per request (model has no price) now: 2,400 (usually 800, 3.0× the usual)."),
        (AlertName.ERROR_RATE_HIGH, 0.18, 0.012, None, {},
         "Error ratio now: 18.0% (usually 1.2%, 15.0× the usual)."),
        (AlertName.BUDGET_BURN, 1240.0, 610.0, 1000.0, {"period": "monthly"},
         "Projected spend now: $1,240 (spent so far $610; budget $1,000)."),
        (AlertName.AVAILABILITY_SLO_BURN, 14.4, 1.0, 14.4, {},
         "Burn rate now: 14.4× (alert threshold 14.4×; 1× would use up the error budget exactly"),
        (AlertName.TRAFFIC_ABSENT, 0.0, 42.0, 4.2, {},
         "Calls in the window now: 0 (expected 42, 100% below the usual; alert threshold 4)."),
        (AlertName.RUNAWAY_TRACE, 412, 9, 200, {"metric": "calls"},
         "LLM calls now: 412 (a normal heavy trace 9; alert threshold 200)."),
        (AlertName.RUNAWAY_TRACE, 3.5, 0.2, 2.0, {"metric": "cost_usd"},
         "Cost now: $3.50 (a normal heavy trace $0.2000; alert threshold $2.00)."),
        (AlertName.LATENCY_REGRESSION, 14_200, 4_000, 8_000, {"metric": "ttft", "quantile": "p95"},
         "Time to first token p95 now: 14.2 s (usually 4,000 ms, 3.5× the usual; alert threshold 8,000 ms)."),
        (AlertName.QUALITY_REGRESSION, 0.61, 0.83, -0.2, {},
         "Mean judge score now: 0.610 (in the reference period 0.830)."),
        (AlertName.JUDGE_DISAGREEMENT, 0.31, None, 0.4, {},
         "Judge agreement (Cohen's kappa) now: 0.310 (floor 0.400)."),
    ],
)
def test_descriptions_read_in_the_analyzers_units(
    alertname: AlertName, value: float, baseline: float | None, threshold: float | None, details: dict[str, str],
    expected: str,
) -> None:
    text = describe(alertname, {"app": "a"}, value=value, baseline=baseline, threshold=threshold, started_at=T0,
                    details=details)
    assert expected in text


def test_every_alertname_can_be_described() -> None:
    for alertname in AlertName:
        text = describe(alertname, {}, value=1.0, baseline=0.5, threshold=0.8, started_at=T0, evidence="seen")
        assert "all traffic" in text and text.endswith("Evidence: seen.")


def test_state_validation_says_what_is_wrong() -> None:
    with pytest.raises(AlertStateError, match="no time zone"):
        state(started_at=datetime(2026, 11, 20, 14, 5))
    with pytest.raises(AlertStateError, match="needs resolved_at"):
        state(status=AlertStatus.RESOLVED)
    with pytest.raises(AlertStateError, match="cannot have resolved_at"):
        state(resolved_at=T0)
    with pytest.raises(AlertStateError, match="unknown alertname 'LLMNope'"):
        state(alertname="LLMNope")
    with pytest.raises(AlertStateError, match="finding_id is empty"):
        state(finding_id="")
    assert state(alertname="LLMCostSpike", severity="critical", status="firing").alertname is AlertName.COST_SPIKE


def test_fingerprint_is_identity_and_stable() -> None:
    a = state(labels={"provider": "anthropic", "model": "m", "feature": ""})
    b = state(labels={"model": "m", "provider": "anthropic"}, value=1.0, finding_id="other", severity=Severity.CRITICAL)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != state(labels={"model": "m", "provider": "openai"}).fingerprint
    assert a.fingerprint == "3c738210fb16cc75"  # the same in every process and release


def test_observation_converts_with_lifecycle_facts() -> None:
    observation = Observation(
        alertname=AlertName.PROVIDER_OUTAGE, severity=Severity.CRITICAL, labels={"provider": "google"},
        at=T0, value=0.85, baseline=0.01, threshold=0.5, summary="google fails 85% of calls",
        evidence="503 overloaded", details={"dashboard_url": "https://grafana.example/d/x"},
    )
    firing = alert_state_from_observation(observation, finding_id="f-1", started_at=T0)
    assert (firing.status, firing.labels, firing.summary, firing.evidence) == (
        AlertStatus.FIRING, {"provider": "google"}, "google fails 85% of calls", "503 overloaded")
    assert firing.key == observation.key
    # The panel comes from dashboards.links (its uids and panel ids), not from the analyzer's own link.
    assert LINKS.dashboard_url(firing).startswith(
        "https://grafana.example/d/llmpulse-reliability/llm-reliability?orgId=1&viewPanel=2&var-provider=google&"
    )
    resolved = alert_state_from_observation(observation, finding_id="f-1", started_at=T0,
                                            resolved_at=T0 + timedelta(minutes=30))
    assert resolved.status is AlertStatus.RESOLVED and resolved.fingerprint == firing.fingerprint
