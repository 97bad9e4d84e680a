"""AlertState → Alertmanager API v2 alert (POST /api/v2/alerts). Pure: no I/O, time passed in.

Labels are the stable identity (alertname, severity, service="llmpulse" and the finding's dimensions);
everything that changes while an alert fires (value, description) goes into annotations, so
Alertmanager's fingerprint — and every silence matching it — stays the same across resends and restarts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from alerts.describe import default_summary, describe
from alerts.model import AlertState
from dashboards.links import dashboard_url

SERVICE = "llmpulse"
RESERVED_LABELS = ("alertname", "severity", "service")
# Alertmanager 0.25 accepts classic Prometheus label names only.
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class AlertLinks:
    """Where the links in an alert point. Base URLs without a trailing slash are fine either way."""

    public_base_url: str  # the llmpulse API: generatorURL = {this}/v1/findings/{id}
    runbook_base_url: str  # runbook_url = {this}/{alertname}.md
    dashboard_base_url: str  # Grafana: dashboard_url = {this}/d/{uid}?var-app=...

    def generator_url(self, state: AlertState) -> str:
        return f"{self.public_base_url.rstrip('/')}/v1/findings/{quote(state.finding_id, safe='')}"

    def runbook_url(self, state: AlertState) -> str:
        return f"{self.runbook_base_url.rstrip('/')}/{state.alertname.value}.md"

    def dashboard_url(self, state: AlertState) -> str:
        """The Grafana panel that shows this alert, narrowed to its labels and time (dashboards.links)."""
        if state.dashboard_url:
            return state.dashboard_url
        return dashboard_url(
            state.alertname.value, state.labels, self.dashboard_base_url,
            started_at=state.started_at, resolved_at=state.resolved_at,
        )


def label_name(key: str) -> str:
    """A dimension key as an Alertmanager label name (invalid characters become '_')."""
    if _LABEL_NAME.match(key):
        name = key
    else:
        name = _INVALID_CHARS.sub("_", key)
        if not name or name[0].isdigit():
            name = "_" + name
    # A dimension must not overwrite the identity labels llmpulse sets itself.
    return f"finding_{name}" if name in RESERVED_LABELS else name


def alert_labels(state: AlertState) -> dict[str, str]:
    labels = {label_name(k): v for k, v in sorted(state.labels.items()) if v != ""}
    labels.update(alertname=state.alertname.value, severity=state.severity.value, service=SERVICE)
    return labels


def alert_annotations(state: AlertState, links: AlertLinks, *, now: datetime) -> dict[str, str]:
    description = state.description or describe(
        state.alertname,
        state.labels,
        value=state.value,
        baseline=state.baseline,
        threshold=state.threshold,
        started_at=state.started_at,
        resolved_at=state.resolved_at,
        now=now,
        evidence=state.evidence,
        details=state.details,
    )
    annotations = {
        "summary": state.summary or default_summary(state.alertname, state.labels),
        "description": description,
        "runbook_url": links.runbook_url(state),
        "dashboard_url": links.dashboard_url(state),
        "finding_id": state.finding_id,
    }
    if state.value is not None:
        annotations["value"] = f"{state.value:g}"
    if state.baseline is not None:
        annotations["baseline"] = f"{state.baseline:g}"
    if state.threshold is not None:
        annotations["threshold"] = f"{state.threshold:g}"
    return annotations


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ends_at(state: AlertState, *, now: datetime, resend_interval: timedelta) -> datetime:
    """Prometheus' contract: a firing alert is valid for 4 resend intervals (Alertmanager resolves it by
    itself if llmpulse goes silent); a resolved one ends when it resolved."""
    end = state.resolved_at if state.resolved_at is not None else now + 4 * resend_interval
    # Alertmanager rejects an alert that ends before it starts (clock skew between analyzer hosts).
    return max(end, state.started_at + timedelta(milliseconds=1))


def to_alertmanager(
    state: AlertState, links: AlertLinks, *, now: datetime, resend_interval: timedelta
) -> dict[str, Any]:
    return {
        "labels": alert_labels(state),
        "annotations": alert_annotations(state, links, now=now),
        "startsAt": rfc3339(state.started_at),
        "endsAt": rfc3339(ends_at(state, now=now, resend_interval=resend_interval)),
        "generatorURL": links.generator_url(state),
    }
