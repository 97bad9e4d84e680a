"""What reaches clickhouse-connect for a server URL: TLS verification on by default, the CA and client
certificate, and the password from a file only when the URL has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmpulse.clickhouse import ServerTLS, StoreURLError, server_client_kwargs


def test_https_verifies_by_default_with_the_system_trust_store() -> None:
    kwargs = server_client_kwargs("https://ops:pw@ch.example:8443/llm")
    assert kwargs["secure"] is True and kwargs["verify"] is True
    assert "ca_cert" not in kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["username"], kwargs["password"], kwargs["database"]) == (
        "ch.example", 8443, "ops", "pw", "llm"
    )


def test_ca_file_and_client_certificate_are_passed() -> None:
    tls = ServerTLS(ca_file=Path("/etc/ca.pem"), client_cert_file=Path("/c.pem"), client_key_file=Path("/k.pem"))
    kwargs = server_client_kwargs("https://ops@ch.example/llm", password="from-file", tls=tls)
    assert kwargs["ca_cert"] == "/etc/ca.pem"
    assert kwargs["client_cert"] == "/c.pem" and kwargs["client_cert_key"] == "/k.pem"
    assert kwargs["password"] == "from-file"
    assert kwargs["port"] == 8443


def test_verify_off_only_when_asked() -> None:
    assert server_client_kwargs("https://h/db", tls=ServerTLS(verify=False))["verify"] is False


def test_http_has_no_tls_arguments_and_the_default_port() -> None:
    kwargs = server_client_kwargs("http://h/db")
    assert kwargs["secure"] is False and "verify" not in kwargs and kwargs["port"] == 8123
    assert kwargs["username"] == "default" and kwargs["password"] == ""


def test_percent_encoded_credentials_are_decoded() -> None:
    kwargs = server_client_kwargs("https://ops%40corp:p%3Aw%2F@h/db")
    assert (kwargs["username"], kwargs["password"]) == ("ops@corp", "p:w/")


@pytest.mark.parametrize(
    ("url", "password", "tls", "expected"),
    [
        ("https://ops:pw@h/db", "other", None, "keep only one"),
        ("http://h/db", None, ServerTLS(ca_file=Path("/ca.pem")), "not https"),
        ("https://h/db", None, ServerTLS(client_key_file=Path("/k.pem")), "CLIENT_CERT_FILE"),
        ("https://h:notaport/db", None, None, "invalid port"),
    ],
)
def test_contradictions_are_refused_without_showing_the_password(
    url: str, password: str | None, tls: ServerTLS | None, expected: str
) -> None:
    with pytest.raises(StoreURLError, match=expected) as caught:
        server_client_kwargs(url, password=password, tls=tls)
    assert ":pw@" not in str(caught.value)
