"""Findings (analyzers/engine.py) → AlertState (alerts). The only module here that knows the findings' shapes.

Wiring, in the composition root:

    dispatcher = build_alert_dispatcher(settings, client, registry=metrics.registry)
    dispatcher.sync(EngineFindingsSource(ClickHouseFindingStore(client)))   # catch up after a restart
    dispatcher.start()
    scheduler = start_scheduler(client, settings, listeners=[findings_listener(dispatcher)])

Prometheus' mapping: an alert starts when the finding *fired* (not when it became pending), ends when it
resolved; a finding that never fired is not an alert. The severity label is the episode's peak severity,
so it changes at most by escalating (the dispatcher then resolves the lower-severity alert explicitly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from alerts.dispatcher import AlertDispatcher
from alerts.model import AlertState, AlertStatus
from analyzers.engine import ClickHouseFindingStore, Finding, Listener
from analyzers.findings import FindingState, Observation, Severity

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def alert_state_from_observation(
    observation: Observation,
    *,
    finding_id: str,
    started_at: datetime,
    resolved_at: datetime | None = None,
) -> AlertState:
    """The alert for a finding whose latest observation is `observation`: firing since `started_at`,
    or resolved at `resolved_at`."""
    return AlertState(
        alertname=observation.alertname,
        severity=observation.severity,
        labels={k: str(v) for k, v in observation.labels.items() if v is not None and str(v) != ""},
        status=AlertStatus.RESOLVED if resolved_at is not None else AlertStatus.FIRING,
        started_at=started_at,
        resolved_at=resolved_at,
        finding_id=finding_id,
        summary=observation.summary,
        value=observation.value,
        baseline=observation.baseline,
        threshold=observation.threshold,
        evidence=observation.evidence,
        details=dict(observation.details),
    )


def alert_state_from_finding(finding: Finding) -> AlertState | None:
    """The alert for an engine finding; None for one that never fired (pending, or dropped while pending)."""
    if finding.fired_at is None or finding.state is FindingState.PENDING:
        return None
    resolved_at = None
    if finding.state is FindingState.RESOLVED:
        resolved_at = finding.resolved_at or finding.last_seen
    observation = finding.observation
    severity = max(finding.peak_severity, observation.severity, key=lambda s: _RANK[s])
    return alert_state_from_observation(
        replace(observation, labels=finding.labels, severity=severity),
        finding_id=finding.finding_id,
        started_at=finding.fired_at,
        resolved_at=resolved_at,
    )


def alert_states(findings: Iterable[Finding]) -> list[AlertState]:
    return [state for state in map(alert_state_from_finding, findings) if state is not None]


class EngineFindingsSource:
    """FindingsSource over the engine's ClickHouse `findings` table."""

    def __init__(self, store: ClickHouseFindingStore) -> None:
        self.store = store

    def active(self) -> list[AlertState]:
        return alert_states(self.store.firing())

    def changed_since(self, since: datetime) -> list[AlertState]:
        return alert_states(self.store.changed_since(since))


def findings_listener(dispatcher: AlertDispatcher) -> Listener:
    """An Engine listener that hands every batch of fired/resolved findings to the dispatcher (quick: it
    records the history and wakes the delivery threads; HTTP happens there)."""

    def on_findings_changed(findings: Sequence[Finding]) -> None:
        dispatcher.dispatch(alert_states(findings))

    return on_findings_changed
