"""The alert history in ClickHouse (table `alerts`, migration 0040): what fired and resolved, and when.

Written whether or not an Alertmanager is configured, so `llmpulse alerts` always shows what llmpulse
alerted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from clickhouse_connect.driver.client import Client

from alerts.model import AlertState


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One transition as stored, and as `llmpulse alerts` prints it."""

    fingerprint: str
    alertname: str
    severity: str
    status: str
    labels: dict[str, str]
    finding_id: str
    summary: str
    description: str
    value: float | None
    baseline: float | None
    threshold: float | None
    started_at: datetime
    resolved_at: datetime | None
    recorded_at: datetime
    runbook_url: str
    dashboard_url: str
    generator_url: str


def record_of(
    state: AlertState, *, recorded_at: datetime, summary: str, description: str, runbook_url: str,
    dashboard_url: str, generator_url: str,
) -> AlertRecord:
    return AlertRecord(
        fingerprint=state.fingerprint,
        alertname=state.alertname.value,
        severity=state.severity.value,
        status=state.status.value,
        labels={k: v for k, v in state.labels.items() if v != ""},
        finding_id=state.finding_id,
        summary=summary,
        description=description,
        value=state.value,
        baseline=state.baseline,
        threshold=state.threshold,
        started_at=state.started_at,
        resolved_at=state.resolved_at,
        recorded_at=recorded_at,
        runbook_url=runbook_url,
        dashboard_url=dashboard_url,
        generator_url=generator_url,
    )


class AlertHistory(Protocol):
    def record(self, records: Sequence[AlertRecord]) -> None: ...


_COLUMNS = [
    "fingerprint", "alertname", "severity", "status", "labels", "finding_id", "summary", "description", "value",
    "baseline", "threshold", "started_at", "resolved_at", "recorded_at", "runbook_url", "dashboard_url",
    "generator_url",
]
_SELECT = ", ".join(_COLUMNS)

# Latest transition per alert: resolved sorts after firing within an episode.
_CURRENT_SQL = f"""
SELECT {_SELECT} FROM alerts FINAL
ORDER BY fingerprint, started_at DESC, status = 'resolved' DESC
LIMIT 1 BY fingerprint
"""


class ClickHouseAlertHistory:
    def __init__(self, client: Client) -> None:
        self.client = client

    def record(self, records: Sequence[AlertRecord]) -> None:
        if not records:
            return
        rows = [[getattr(r, c) for c in _COLUMNS] for r in records]
        self.client.insert("alerts", rows, column_names=_COLUMNS)

    def current(self, *, resolved_since: datetime | None = None) -> list[AlertRecord]:
        """Every alert's latest state: all firing ones, and resolved ones that resolved after `resolved_since`
        (all of them when None). Firing first, newest first."""
        rows = [_record(row) for row in self.client.query(_CURRENT_SQL).result_rows]
        if resolved_since is not None:
            rows = [r for r in rows if r.status == "firing" or (r.resolved_at and r.resolved_at >= resolved_since)]
        rows.sort(key=lambda r: (r.status != "firing", -(r.resolved_at or r.started_at).timestamp()))
        return rows

    def transitions(self, *, since: datetime | None = None, limit: int = 200) -> list[AlertRecord]:
        """Transitions recorded after `since`, newest first."""
        where = "WHERE recorded_at >= {since:DateTime64(3, 'UTC')}" if since is not None else ""
        sql = f"SELECT {_SELECT} FROM alerts FINAL {where} ORDER BY recorded_at DESC LIMIT {{limit:UInt32}}"
        params: dict[str, object] = {"limit": limit}
        if since is not None:
            params["since"] = since
        return [_record(row) for row in self.client.query(sql, parameters=params).result_rows]


def _utc(value: object) -> object:
    # DateTime64(3, 'UTC') may come back naive depending on the driver's settings: it is UTC either way.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _record(row: Sequence[object]) -> AlertRecord:
    values = {column: _utc(value) for column, value in zip(_COLUMNS, row, strict=True)}
    values["labels"] = dict(values["labels"])  # type: ignore[call-overload]
    return AlertRecord(**values)  # type: ignore[arg-type]
