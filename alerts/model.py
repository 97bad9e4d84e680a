"""What the alerting step works on: the state of one alert, as the findings engine last reported it.

`AlertState` is alerts' own input type, so this package does not depend on the engine's storage types:
`alerts.from_findings` converts the engine's findings, tests build states directly. Identity is the
alert name plus the finding's dimensions (the same as `Observation.key`): it gives the Alertmanager
labels, so fingerprints and silences survive restarts of llmpulse and of Alertmanager.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from analyzers.findings import AlertName, Severity


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertStateError(ValueError):
    """An AlertState that cannot be sent: says which field of which alert is wrong."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """One finding as an alert: firing (since `started_at`) or resolved (at `resolved_at`).

    `labels` are the finding's dimensions (app, provider, model, ...); the alert name, severity and
    service labels are added when it is sent. `value`/`baseline`/`threshold` are in the unit the
    analyzer measures (see alerts.describe for how each alert name reads them).
    """

    alertname: AlertName
    severity: Severity
    labels: Mapping[str, str]
    status: AlertStatus
    started_at: datetime
    finding_id: str
    summary: str = ""
    description: str = ""
    value: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    resolved_at: datetime | None = None
    evidence: str = ""
    dashboard_url: str = ""  # overrides the Grafana panel link alerts computes (dashboards.links)
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"alert {self.alertname} {dict(self.labels)}"
        if not isinstance(self.alertname, AlertName):
            try:
                object.__setattr__(self, "alertname", AlertName(self.alertname))
            except ValueError:
                raise AlertStateError(
                    f"{where}: unknown alertname {self.alertname!r} (allowed: {[a.value for a in AlertName]})"
                ) from None
        if not isinstance(self.severity, Severity):
            try:
                object.__setattr__(self, "severity", Severity(self.severity))
            except ValueError:
                raise AlertStateError(f"{where}: unknown severity {self.severity!r}") from None
        if not isinstance(self.status, AlertStatus):
            try:
                object.__setattr__(self, "status", AlertStatus(self.status))
            except ValueError:
                raise AlertStateError(f"{where}: status must be 'firing' or 'resolved', not {self.status!r}") from None
        if self.started_at.tzinfo is None:
            raise AlertStateError(f"{where}: started_at {self.started_at} has no time zone (use UTC)")
        if self.status is AlertStatus.RESOLVED:
            if self.resolved_at is None:
                raise AlertStateError(f"{where}: a resolved alert needs resolved_at")
            if self.resolved_at.tzinfo is None:
                raise AlertStateError(f"{where}: resolved_at {self.resolved_at} has no time zone (use UTC)")
        elif self.resolved_at is not None:
            raise AlertStateError(f"{where}: a firing alert cannot have resolved_at ({self.resolved_at})")
        if not self.finding_id:
            raise AlertStateError(f"{where}: finding_id is empty (generatorURL points at the finding)")

    @property
    def firing(self) -> bool:
        return self.status is AlertStatus.FIRING

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Same identity as `Observation.key`: alert name plus dimensions, values that are set."""
        return self.alertname.value, tuple(sorted((k, v) for k, v in self.labels.items() if v != ""))

    @property
    def fingerprint(self) -> str:
        """Stable id of the alert across processes (not Alertmanager's own fingerprint, which hashes
        severity and service too; both are stable)."""
        name, labels = self.key
        text = "\x1f".join([name, *(f"{k}\x1e{v}" for k, v in labels)])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def resolve(self, at: datetime) -> AlertState:
        return replace(self, status=AlertStatus.RESOLVED, resolved_at=at)


class FindingsSource(Protocol):
    """Where alert states come from (the findings engine, through alerts.from_findings).

    `active()`: every finding firing now. `changed_since(t)`: findings that started firing or resolved
    after `t`, in their latest state. A caller that restarts seeds the dispatcher with `active()` plus
    `changed_since(now - resolved_retention)` so recently resolved alerts still reach Alertmanager.
    """

    def active(self) -> Sequence[AlertState]: ...

    def changed_since(self, since: datetime) -> Sequence[AlertState]: ...
