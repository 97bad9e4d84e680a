"""AlertDispatcher: Prometheus' resend contract, retry with backoff, never dropping a state change, HA fan-out.

Time is a fake clock and Alertmanagers are in-memory sinks: this is the dispatcher's own logic (the real
Alertmanager is in tests/integration/test_alertmanager.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

from alerts.dispatcher import AlertDispatcher
from alerts.history import AlertRecord
from alerts.model import AlertState, AlertStatus
from alerts.payload import AlertLinks
from alerts.sender import DeliveryError
from analyzers.findings import AlertName, Severity

LINKS = AlertLinks("http://llmpulse:8080", "http://llmpulse:8080/runbooks", "http://grafana:3000")
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Sink:
    """An Alertmanager stand-in that keeps what it accepted, by Alertmanager identity (the labels)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down = False
        self.posts: list[list[dict[str, Any]]] = []
        self.alerts: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}

    def post(self, alerts: Sequence[dict[str, Any]]) -> None:
        if self.down:
            raise DeliveryError("unreachable", f"{self.name} unreachable: connection refused")
        self.posts.append(list(alerts))
        for alert in alerts:
            self.alerts[tuple(sorted(alert["labels"].items()))] = alert

    def state_of(self, alertname: str) -> dict[str, Any]:
        [alert] = [a for key, a in self.alerts.items() if ("alertname", alertname) in key]
        return alert


class History:
    def __init__(self) -> None:
        self.records: list[AlertRecord] = []

    def record(self, records: Sequence[AlertRecord]) -> None:
        self.records.extend(records)


def alert(alertname: AlertName = AlertName.ERROR_RATE_HIGH, *, app: str = "support-bot",
          started: datetime = T0 - timedelta(minutes=5), **overrides: Any) -> AlertState:
    values: dict[str, Any] = {
        "alertname": alertname, "severity": Severity.WARNING, "labels": {"app": app},
        "status": AlertStatus.FIRING, "started_at": started, "finding_id": f"f-{alertname}-{app}", "value": 0.2,
        "baseline": 0.01,
    }
    values.update(overrides)
    return AlertState(**values)


def make(*sinks: Sink, clock: Clock, **kwargs: Any) -> AlertDispatcher:
    kwargs.setdefault("history", History())
    return AlertDispatcher(
        list(sinks), LINKS, clock=clock, resend_interval=timedelta(minutes=1),
        resolved_retention=timedelta(minutes=15), retry_initial=timedelta(seconds=1),
        retry_max=timedelta(seconds=30), **kwargs,
    )


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_transition_is_sent_at_once_and_recorded_refresh_is_not() -> None:
    clock, sink = Clock(), Sink("am")
    history = History()
    dispatcher = make(sink, clock=clock, history=history)
    firing = alert()
    assert dispatcher.dispatch([firing]) == [firing]
    assert dispatcher.run_pending()
    assert len(sink.posts) == 1 and sink.state_of("LLMErrorRateHigh")["endsAt"] == iso(T0 + timedelta(minutes=4))

    clock.advance(seconds=20)
    assert dispatcher.dispatch([alert(value=0.3)]) == []  # same finding, newer number: no transition
    assert dispatcher.run_pending()
    assert len(sink.posts) == 1  # nothing new to send until the resend interval
    assert [r.status for r in history.records] == ["firing"]


def test_firing_alerts_are_resent_every_interval_with_ends_at_moving_ahead() -> None:
    clock, sink = Clock(), Sink("am")
    dispatcher = make(sink, clock=clock)
    dispatcher.dispatch([alert()])
    dispatcher.run_pending()
    for minute in range(1, 4):
        clock.advance(minutes=1)
        dispatcher.run_pending()
        assert sink.state_of("LLMErrorRateHigh")["endsAt"] == iso(T0 + timedelta(minutes=minute + 4))
    assert len(sink.posts) == 4


def test_resolved_alert_is_resent_for_the_retention_then_forgotten() -> None:
    clock, sink = Clock(), Sink("am")
    dispatcher = make(sink, clock=clock)
    firing = alert()
    dispatcher.dispatch([firing])
    dispatcher.run_pending()
    resolved_at = clock.now
    dispatcher.dispatch([firing.resolve(resolved_at)])
    dispatcher.run_pending()
    assert sink.state_of("LLMErrorRateHigh")["endsAt"] == iso(resolved_at)
    sends = len(sink.posts)
    clock.advance(minutes=14)
    dispatcher.run_pending()
    assert len(sink.posts) == sends + 1 and dispatcher.tracked()
    clock.advance(minutes=1, seconds=1)
    dispatcher.run_pending()
    assert dispatcher.tracked() == []
    clock.advance(minutes=1)
    dispatcher.run_pending()
    assert len(sink.posts) == sends + 2  # the last resend before forgetting; nothing after


def test_out_of_order_and_new_episode() -> None:
    clock, sink = Clock(), Sink("am")
    history = History()
    dispatcher = make(sink, clock=clock, history=history)
    firing = alert()
    resolved = firing.resolve(T0)
    dispatcher.dispatch([firing])
    dispatcher.dispatch([resolved])
    assert dispatcher.dispatch([firing]) == []  # a late report of the same episode does not re-fire it
    assert dispatcher.tracked() == [resolved]
    again = alert(started=T0 + timedelta(minutes=10), finding_id="f-2")
    assert dispatcher.dispatch([again]) == [again]
    assert dispatcher.dispatch([firing]) == []  # an older episode is stale
    assert [r.status for r in history.records] == ["firing", "resolved", "firing"]


def test_alertmanager_down_keeps_every_state_change_and_retries_with_backoff() -> None:
    clock, sink = Clock(), Sink("am")
    dispatcher = make(sink, clock=clock)
    first = alert()
    dispatcher.dispatch([first])
    dispatcher.run_pending()

    sink.down = True
    dispatcher.dispatch([first.resolve(clock.now)])
    second = alert(AlertName.TRAFFIC_ABSENT, app="search-rag", started=clock.now)
    dispatcher.dispatch([second])
    waits = []
    for _ in range(7):
        assert not dispatcher.run_pending()
        [status] = dispatcher.status()
        assert status.retry_at is not None and status.undelivered == 2
        waits.append((status.retry_at - clock.now).total_seconds())
        clock.now = status.retry_at
    assert waits == [1, 2, 4, 8, 16, 30, 30]  # exponential, capped at retry_max
    assert dispatcher.status()[0].consecutive_failures == 7
    assert "connection refused" in dispatcher.status()[0].last_error

    # Down for far longer than the retention: the resolution still gets through.
    clock.advance(minutes=30)
    assert not dispatcher.run_pending()  # still down
    assert len(dispatcher.tracked()) == 2
    sink.down = False
    clock.advance(minutes=1)
    assert dispatcher.run_pending()
    assert sink.state_of("LLMErrorRateHigh")["endsAt"] == iso(T0)  # resolved in Alertmanager
    assert sink.state_of("LLMTrafficAbsent")["endsAt"] == iso(clock.now + timedelta(minutes=4))
    assert dispatcher.status()[0].consecutive_failures == 0
    # Delivered and past retention: now it may be forgotten.
    assert [s.alertname for s in dispatcher.tracked()] == [AlertName.TRAFFIC_ABSENT]


def test_ha_pair_one_member_down_does_not_hold_back_the_other() -> None:
    clock, up, down = Clock(), Sink("am-a"), Sink("am-b")
    down.down = True
    dispatcher = make(up, down, clock=clock)
    dispatcher.dispatch([alert()])
    assert not dispatcher.run_pending()
    assert up.state_of("LLMErrorRateHigh")
    assert [s.undelivered for s in dispatcher.status()] == [0, 1]
    exposition = generate_latest(dispatcher.metrics.registry).decode()
    assert 'llmpulse_alertmanager_send_failures_total{alertmanager="am-b",reason="unreachable"} 1.0' in exposition
    assert 'llmpulse_alertmanager_undelivered_alerts{alertmanager="am-b"} 1.0' in exposition
    assert 'llmpulse_alertmanager_undelivered_alerts{alertmanager="am-a"} 0.0' in exposition
    assert 'llmpulse_alertmanager_alerts_sent_total{alertmanager="am-a"} 1.0' in exposition
    assert 'llmpulse_alerts{status="firing"} 1.0' in exposition
    down.down = False
    clock.advance(seconds=1)
    assert dispatcher.run_pending()
    assert down.state_of("LLMErrorRateHigh")


def test_many_alerts_are_sent_in_batches() -> None:
    clock, sink = Clock(), Sink("am")
    dispatcher = make(sink, clock=clock, batch_size=10)
    dispatcher.dispatch([alert(app=f"app-{i}") for i in range(25)])
    assert dispatcher.run_pending()
    assert [len(post) for post in sink.posts] == [10, 10, 5]
    assert len(sink.alerts) == 25


def test_flush_gives_up_after_its_timeout_and_keeps_the_queue() -> None:
    clock, sink = Clock(), Sink("am")
    sink.down = True
    dispatcher = make(sink, clock=clock)
    dispatcher.dispatch([alert()])
    assert dispatcher.flush(timeout=0.05) is False
    assert dispatcher.status()[0].undelivered == 1
    sink.down = False
    assert dispatcher.flush(timeout=1) is True
    assert dispatcher.status()[0].undelivered == 0


def test_without_alertmanager_alerts_are_only_recorded() -> None:
    clock = Clock()
    history = History()
    dispatcher = make(clock=clock, history=history)
    firing = alert()
    dispatcher.dispatch([firing])
    dispatcher.dispatch([firing.resolve(T0)])
    assert dispatcher.flush() and dispatcher.run_pending()
    assert [(r.alertname, r.status) for r in history.records] == [
        ("LLMErrorRateHigh", "firing"), ("LLMErrorRateHigh", "resolved")]
    assert "usually 1.0%" in history.records[0].description
    clock.advance(minutes=16)
    dispatcher.dispatch([])
    assert dispatcher.tracked() == []


def test_background_workers_deliver_and_stop_flushes() -> None:
    sink = Sink("am")
    dispatcher = AlertDispatcher([sink], LINKS, resend_interval=timedelta(seconds=30))
    dispatcher.start()
    try:
        dispatcher.dispatch([alert()])
        for _ in range(200):
            if sink.posts:
                break
            time.sleep(0.01)
        assert sink.posts
        dispatcher.dispatch([alert().resolve(datetime.now(UTC))])
    finally:
        assert dispatcher.stop(flush_timeout=2)
    assert sink.state_of("LLMErrorRateHigh")["annotations"]["description"].count("Resolved at") == 1


def test_configuration_errors_are_explicit() -> None:
    with pytest.raises(ValueError, match="configured twice"):
        AlertDispatcher([Sink("a"), Sink("a")], LINKS)
    with pytest.raises(ValueError, match="resend_interval must be positive"):
        AlertDispatcher([], LINKS, resend_interval=timedelta(0))


def test_escalation_resolves_the_lower_severity_alert_in_alertmanager() -> None:
    clock, sink = Clock(), Sink("am")
    history = History()
    dispatcher = make(sink, clock=clock, history=history)
    warning = alert()
    dispatcher.dispatch([warning])
    dispatcher.run_pending()
    clock.advance(seconds=30)
    critical = alert(severity=Severity.CRITICAL, value=0.6)
    assert dispatcher.dispatch([critical]) == [critical]
    assert dispatcher.run_pending()
    by_severity = {a["labels"]["severity"]: a for a in sink.alerts.values()}
    assert by_severity["warning"]["endsAt"] == iso(clock.now)  # resolved now, not left to expire
    assert by_severity["critical"]["endsAt"] == iso(clock.now + timedelta(minutes=4))
    assert by_severity["critical"]["startsAt"] == iso(warning.started_at)  # the same episode
    assert [(r.severity, r.status) for r in history.records] == [("warning", "firing"), ("critical", "firing")]
