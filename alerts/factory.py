"""Builds the alerting step from Settings; called by the composition root (`llmpulse serve`/`analyze`)."""

from __future__ import annotations

from datetime import timedelta

from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry

from alerts.dispatcher import AlertDispatcher, Clock, utc_now
from alerts.history import ClickHouseAlertHistory
from alerts.metrics import AlertMetrics
from alerts.payload import AlertLinks
from alerts.sender import AlertmanagerClient, AlertSink
from llmpulse.settings import Settings

_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def alert_links(settings: Settings) -> AlertLinks:
    public = settings.alert_public_base_url
    if not public:
        host = "localhost" if settings.http_host in _WILDCARD_HOSTS else settings.http_host
        public = f"http://{host}:{settings.http_port}"
    public = public.rstrip("/")
    runbooks = (settings.alert_runbook_base_url or f"{public}/runbooks").rstrip("/")
    return AlertLinks(
        public_base_url=public, runbook_base_url=runbooks, dashboard_base_url=settings.alert_dashboard_base_url
    )


def alertmanager_sinks(settings: Settings) -> list[AlertSink]:
    """One client per LLMPULSE_ALERTMANAGER_URL entry; raises AlertmanagerURLError on a bad URL."""
    return [AlertmanagerClient(url, timeout=settings.alertmanager_timeout_s) for url in settings.alertmanager_url]


def build_alert_dispatcher(
    settings: Settings,
    client: Client | None,
    *,
    registry: CollectorRegistry | None = None,
    metrics: AlertMetrics | None = None,
    clock: Clock = utc_now,
    resend_interval: timedelta | None = None,
) -> AlertDispatcher:
    """The dispatcher for this process: Alertmanager(s) from settings (none is fine), history in the
    `alerts` table of `client` (None: no history), metrics on `registry` (the app's /metrics).

    `resend_interval` overrides the setting, e.g. for a one-shot `analyze` run from cron every N minutes,
    whose alerts must stay valid in Alertmanager until the next run (endsAt is 4 intervals ahead).
    Raises AlertmanagerURLError for a malformed LLMPULSE_ALERTMANAGER_URL."""
    return AlertDispatcher(
        alertmanager_sinks(settings),
        alert_links(settings),
        resend_interval=resend_interval or timedelta(seconds=settings.alert_resend_interval_s),
        resolved_retention=timedelta(seconds=settings.alert_resolved_retention_s),
        retry_max=timedelta(seconds=settings.alert_retry_max_s),
        clock=clock,
        history=ClickHouseAlertHistory(client) if client is not None else None,
        metrics=metrics or AlertMetrics(registry),
    )
