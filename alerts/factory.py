"""Builds the alerting step from Settings; called by the composition root (`llmpulse serve`/`analyze`)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from alerts.dispatcher import AlertDispatcher, Clock, utc_now
from alerts.history import ClickHouseAlertHistory
from alerts.metrics import AlertMetrics
from alerts.payload import AlertLinks
from alerts.sender import AlertmanagerAuth, AlertmanagerClient, AlertmanagerURLError, AlertSink
from llmpulse.settings import Settings

log = logging.getLogger(__name__)

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


def _secret(value: SecretStr | None, path: Path | None, setting: str) -> str | None:
    """A file (a Docker/Kubernetes secret) wins over the variable; its trailing newline is not part of it."""
    if path is not None:
        try:
            text = path.read_text("utf-8").strip()
        except OSError as exc:
            raise AlertmanagerURLError(f"cannot read {setting} {path}: {exc.strerror or exc}") from None
        if not text:
            raise AlertmanagerURLError(f"{setting} {path} is empty")
        return text
    return value.get_secret_value() if value is not None else None


def _file(path: Path | None, setting: str) -> Path | None:
    if path is not None and not path.is_file():
        raise AlertmanagerURLError(f"{setting} {path}: no such file")
    return path


def alertmanager_auth(settings: Settings) -> AlertmanagerAuth:
    """Credentials and TLS trust for every Alertmanager; raises AlertmanagerURLError when they cannot be used."""
    return AlertmanagerAuth(
        username=settings.alertmanager_username or None,
        password=_secret(settings.alertmanager_password, settings.alertmanager_password_file,
                         "LLMPULSE_ALERTMANAGER_PASSWORD_FILE"),
        bearer_token=_secret(settings.alertmanager_bearer_token, settings.alertmanager_bearer_token_file,
                             "LLMPULSE_ALERTMANAGER_BEARER_TOKEN_FILE"),
        verify=settings.alertmanager_tls_verify,
        ca_file=_file(settings.alertmanager_ca_file, "LLMPULSE_ALERTMANAGER_CA_FILE"),
        client_cert_file=_file(settings.alertmanager_client_cert_file, "LLMPULSE_ALERTMANAGER_CLIENT_CERT_FILE"),
        client_key_file=_file(settings.alertmanager_client_key_file, "LLMPULSE_ALERTMANAGER_CLIENT_KEY_FILE"),
    )


def alertmanager_clients(settings: Settings) -> list[AlertmanagerClient]:
    """One client per LLMPULSE_ALERTMANAGER_URL entry, with the auth/TLS settings; raises AlertmanagerURLError
    on a bad URL or unusable credentials/certificates."""
    if not settings.alertmanager_url:
        return []
    auth = alertmanager_auth(settings)
    clients = [
        AlertmanagerClient(url, timeout=settings.alertmanager_timeout_s, auth=auth)
        for url in settings.alertmanager_url
    ]
    for client in clients:
        if client.authorization and client.name.startswith("http://"):
            log.warning("alertmanager %s: credentials are sent over plain http (use https://)", client.name)
    return clients


def alertmanager_sinks(settings: Settings) -> list[AlertSink]:
    """One client per LLMPULSE_ALERTMANAGER_URL entry; raises AlertmanagerURLError on a bad URL."""
    return list(alertmanager_clients(settings))


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
