"""llmpulse → a real Alertmanager behind its own --web.config.file: TLS with a test CA and bcrypt basic auth.

The clients are built from Settings exactly as `llmpulse serve`/`analyze` build them (alerts.factory), so
LLMPULSE_ALERTMANAGER_USERNAME / _PASSWORD_FILE / _CA_FILE are what is tested. Wrong credentials or an
untrusted certificate fail with a message that names the Alertmanager (never the password), and the alerts
stay queued and are delivered once the cause is fixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.dispatcher import AlertDispatcher
from alerts.factory import alertmanager_clients
from alerts.model import AlertState, AlertStatus
from alerts.payload import AlertLinks
from alerts.sender import AlertmanagerClient, DeliveryError
from analyzers.findings import AlertName, Severity
from llmpulse.commands.alerts import _check_alertmanagers
from llmpulse.settings import Settings
from tests.support.alertmanager import AlertmanagerFactory, AlertmanagerServer, WebConfig
from tests.support.tls import LocalPKI, make_test_pki
from tests.support.webhook_receiver import WebhookReceiver, alert_matches

pytestmark = pytest.mark.integration

PASSWORD = "am-pw-9f3c"  # what Alertmanager accepts (bcrypt-hashed in its web config)
LINKS = AlertLinks(public_base_url="http://llmpulse.test:8080", runbook_base_url="http://llmpulse.test:8080/runbooks",
                   dashboard_base_url="http://grafana.test:3000")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPKI:
    return make_test_pki(tmp_path_factory.mktemp("am-pki"))


@pytest.fixture()
def secured(alertmanager_factory: AlertmanagerFactory, pki: LocalPKI) -> AlertmanagerServer:
    return alertmanager_factory(web_config=WebConfig(
        users={"llmpulse": PASSWORD}, cert_file=pki.server_cert, key_file=pki.server_key, ca_file=pki.ca_file,
    ))


@pytest.fixture()
def dispatchers() -> Iterator[list[AlertDispatcher]]:
    made: list[AlertDispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.stop(flush_timeout=0)


def _settings(server: AlertmanagerServer, tmp_path: Path, *, password: str = PASSWORD,
              ca_file: Path | None = None) -> Settings:
    secret = tmp_path / "am-password"
    secret.write_text(password + "\n")
    return Settings(  # type: ignore[call-arg]
        _env_file=None, alertmanager_url=[server.url], alertmanager_username="llmpulse",
        alertmanager_password_file=secret, alertmanager_ca_file=ca_file, alertmanager_timeout_s=3,
    )


def _dispatcher(clients: list[AlertmanagerClient], made: list[AlertDispatcher]) -> AlertDispatcher:
    dispatcher = AlertDispatcher(
        list(clients), LINKS, resend_interval=timedelta(seconds=1), resolved_retention=timedelta(seconds=30),
        retry_initial=timedelta(milliseconds=100), retry_max=timedelta(milliseconds=300),
    )
    made.append(dispatcher)
    return dispatcher


def _firing(finding_id: str) -> AlertState:
    return AlertState(
        alertname=AlertName.COST_SPIKE, severity=Severity.CRITICAL,
        labels={"app": "support-bot", "feature": "summarize", "environment": "production"},
        status=AlertStatus.FIRING, started_at=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5),
        finding_id=finding_id,
    )


def _wait_for_failure(dispatcher: AlertDispatcher, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        [status] = dispatcher.status()
        if status.consecutive_failures and status.last_error:
            assert status.undelivered == 1, "the alert stays queued"
            return status.last_error
        assert time.monotonic() < deadline, f"no failed delivery in {timeout}s: {status}"
        time.sleep(0.05)


def test_delivery_with_basic_auth_and_the_ca_file(
    secured: AlertmanagerServer, pki: LocalPKI, webhook_receiver: WebhookReceiver, tmp_path: Path,
    dispatchers: list[AlertDispatcher],
) -> None:
    settings = _settings(secured, tmp_path, ca_file=pki.ca_file)
    assert _check_alertmanagers(settings)  # `llmpulse alerts --check` with the same credentials and CA
    dispatcher = _dispatcher(alertmanager_clients(settings), dispatchers)
    dispatcher.start()
    dispatcher.dispatch([_firing("f-auth-1")])
    page = webhook_receiver.wait_for(alert_matches("LLMCostSpike", status="firing", app="support-bot"),
                                     what="alert through TLS + basic auth")
    assert page.receiver == "llm-oncall-page"
    assert secured.url.startswith("https://")


def test_wrong_password_is_reported_without_it_and_the_alert_is_delivered_once_fixed(
    secured: AlertmanagerServer, pki: LocalPKI, webhook_receiver: WebhookReceiver, tmp_path: Path,
    dispatchers: list[AlertDispatcher], caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = _settings(secured, tmp_path, password="not-the-password", ca_file=pki.ca_file)
    [client] = alertmanager_clients(wrong)
    with pytest.raises(DeliveryError) as caught:
        client.post([])
    assert caught.value.reason == "unauthorized"
    assert secured.url in str(caught.value) and "not-the-password" not in str(caught.value)
    assert "LLMPULSE_ALERTMANAGER_USERNAME" in str(caught.value)

    dispatcher = _dispatcher([client], dispatchers)
    with caplog.at_level(logging.WARNING, logger="alerts.dispatcher"):
        dispatcher.start()
        dispatcher.dispatch([_firing("f-auth-2")])
        error = _wait_for_failure(dispatcher)
    assert "401" in error and secured.url in error
    assert "not-the-password" not in caplog.text and PASSWORD not in caplog.text
    assert "stay queued" in caplog.text
    assert not webhook_receiver.received(alert_matches("LLMCostSpike"))

    # The operator fixes the password file; a restarted process reads it (what `serve` does on restart).
    fixed = _settings(secured, tmp_path, ca_file=pki.ca_file)
    client.authorization = alertmanager_clients(fixed)[0].authorization
    webhook_receiver.wait_for(alert_matches("LLMCostSpike", status="firing", app="support-bot"),
                              what="the queued alert after the fix")


def test_untrusted_certificate_fails_clearly_and_keeps_the_alert(
    secured: AlertmanagerServer, pki: LocalPKI, webhook_receiver: WebhookReceiver, tmp_path: Path,
    dispatchers: list[AlertDispatcher],
) -> None:
    for ca_file in (None, pki.other_ca_file):  # the system's CAs, then a CA that did not sign it
        [client] = alertmanager_clients(_settings(secured, tmp_path, ca_file=ca_file))
        with pytest.raises(DeliveryError) as caught:
            client.post([])
        assert caught.value.reason == "tls"
        assert "not trusted" in str(caught.value) and "LLMPULSE_ALERTMANAGER_CA_FILE" in str(caught.value)
        assert secured.url in str(caught.value)
    dispatcher = _dispatcher([client], dispatchers)
    dispatcher.start()
    dispatcher.dispatch([_firing("f-auth-3")])
    assert "not trusted" in _wait_for_failure(dispatcher)
    assert not webhook_receiver.received(alert_matches("LLMCostSpike"))


def test_without_credentials_alertmanager_refuses(secured: AlertmanagerServer, pki: LocalPKI, tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, alertmanager_url=[secured.url], alertmanager_ca_file=pki.ca_file, alertmanager_timeout_s=3,
    )
    [client] = alertmanager_clients(settings)
    with pytest.raises(DeliveryError) as caught:
        client.post([])
    assert caught.value.reason == "unauthorized"
    assert not _check_alertmanagers(settings)
