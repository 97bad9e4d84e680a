"""Engine findings → AlertState: Prometheus' mapping (starts when it fired), peak severity, stable identity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from alerts.dispatcher import AlertDispatcher
from alerts.from_findings import alert_state_from_finding, alert_states, findings_listener
from alerts.model import AlertState, AlertStatus
from alerts.payload import AlertLinks
from analyzers.engine import Engine, Finding, MemoryFindingStore
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, FindingState, Observation, Severity

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
LINKS = AlertLinks("http://llmpulse:8080", "http://llmpulse:8080/runbooks", "http://grafana:3000")


class ScriptedAnalyzer:
    name: str = "errors"
    alertnames: tuple[AlertName, ...] = (AlertName.ERROR_RATE_HIGH,)
    interval: timedelta = timedelta(minutes=1)

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:  # driven through Engine.apply instead
        raise NotImplementedError


def observe(severity: Severity = Severity.WARNING, value: float = 0.2) -> Observation:
    return Observation(
        alertname=AlertName.ERROR_RATE_HIGH, severity=severity, labels={"app": "support-bot", "environment": "prod"},
        at=T0, value=value, baseline=0.01, threshold=0.05, summary=f"{value:.0%} of calls fail",
        evidence="rate_limit errors", for_duration=timedelta(minutes=5),
    )


def run(engine: Engine, minute: int, *observations: Observation) -> list[Finding]:
    return engine.apply(ScriptedAnalyzer(), AnalyzerResult(list(observations)), T0 + timedelta(minutes=minute))


def test_lifecycle_maps_to_alert_states() -> None:
    store = MemoryFindingStore()
    engine = Engine(store)
    run(engine, 0, observe())
    [pending] = store.episodes.values()
    assert alert_state_from_finding(pending) is None  # pending is not an alert yet

    [fired] = run(engine, 5, observe(value=0.3))
    state = alert_state_from_finding(fired)
    assert state is not None
    assert (state.status, state.started_at, state.finding_id) == (AlertStatus.FIRING, T0 + timedelta(minutes=5),
                                                                  fired.finding_id)
    assert state.fingerprint == fired.fingerprint  # the same identity as the engine's
    assert dict(state.labels) == {"app": "support-bot", "environment": "prod"}
    assert (state.value, state.summary, state.evidence) == (0.3, "30% of calls fail", "rate_limit errors")

    run(engine, 6, observe(Severity.CRITICAL, 0.6))
    run(engine, 7, observe(Severity.WARNING, 0.2))
    [resolved] = run(engine, 9)
    state = alert_state_from_finding(resolved)
    assert state is not None
    assert (state.status, state.resolved_at) == (AlertStatus.RESOLVED, T0 + timedelta(minutes=9))
    assert state.severity is Severity.CRITICAL  # peak severity: the label does not flap back down


def test_finding_dropped_while_pending_is_no_alert() -> None:
    engine = Engine(MemoryFindingStore())
    run(engine, 0, observe())
    assert run(engine, 1) == []  # resolved before `for` elapsed: no transition reaches listeners
    store = engine.store
    assert isinstance(store, MemoryFindingStore)
    assert alert_states(store.episodes.values()) == []


class MemorySource:
    """FindingsSource over the engine's memory store (EngineFindingsSource does the same over ClickHouse)."""

    def __init__(self, store: MemoryFindingStore) -> None:
        self.store = store

    def active(self) -> list[AlertState]:
        return alert_states(f for f in self.store.episodes.values() if f.state is FindingState.FIRING)

    def changed_since(self, since: datetime) -> list[AlertState]:
        return alert_states(f for f in self.store.episodes.values()
                            if max(f.fired_at or since, f.resolved_at or since) > since)


def test_listener_sends_transitions_and_sync_catches_an_escalation() -> None:
    now = [T0 + timedelta(minutes=5)]
    dispatcher = AlertDispatcher([], LINKS, clock=lambda: now[0])
    seen: list[Sequence[Finding]] = []
    store = MemoryFindingStore()
    engine = Engine(store, listeners=[findings_listener(dispatcher), seen.append])
    run(engine, 0, observe())
    run(engine, 5, observe())
    [state] = dispatcher.tracked()
    assert state.firing and state.severity is Severity.WARNING

    run(engine, 6, observe(Severity.CRITICAL, 0.7))  # no transition, so the engine tells listeners nothing
    assert len(seen) == 1
    now[0] = T0 + timedelta(minutes=7)
    [escalated] = dispatcher.sync(MemorySource(store))
    states = {(s.severity, s.status) for s in dispatcher.tracked()}
    # The warning alert is resolved explicitly, the critical one (a new label set) fires.
    assert states == {(Severity.WARNING, AlertStatus.RESOLVED), (Severity.CRITICAL, AlertStatus.FIRING)}
    assert escalated.severity is Severity.CRITICAL and escalated.started_at == T0 + timedelta(minutes=5)

    run(engine, 8)
    assert len(seen) == 2
    assert {(s.severity, s.status) for s in dispatcher.tracked()} == {
        (Severity.WARNING, AlertStatus.RESOLVED), (Severity.CRITICAL, AlertStatus.RESOLVED)}
    assert dispatcher.sync(MemorySource(store)) == []  # nothing new: a sync is idempotent
