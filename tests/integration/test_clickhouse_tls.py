"""ClickHouse over https: the CA file, certificate verification and the password file, at the TLS layer.

No ClickHouse server runs here (the store is embedded chDB), so the peer is a local TLS endpoint with a
certificate made for the test: it completes real TLS handshakes with clickhouse-connect and records the
HTTP request that follows, then answers 503. It is NOT a ClickHouse: what these tests prove is that
llmpulse's connection (a) refuses a certificate it cannot verify, (b) trusts it with
LLMPULSE_CLICKHOUSE_CA_FILE, (c) sends the password from LLMPULSE_CLICKHOUSE_PASSWORD_FILE or the URL, and
(d) reports each failure in one line with the URL masked, never the password.
"""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmpulse.errors import OperatorError
from llmpulse.runtime import connect_store
from llmpulse.settings import Settings
from tests.support.tls import LocalPKI, make_test_pki

SECRET = "ch-s3cret-from-file"


class _RecordingTLSEndpoint:
    """HTTPS on 127.0.0.1 with the test PKI's server certificate; records each request's Authorization."""

    def __init__(self, pki: LocalPKI) -> None:
        seen: list[str | None] = []
        self.authorizations = seen

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b"llmpulse stand-in endpoint, not a ClickHouse server"
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def basic_passwords(self) -> list[str]:
        out = []
        for value in self.authorizations:
            if value and value.startswith("Basic "):
                out.append(base64.b64decode(value[6:]).decode().split(":", 1)[1])
        return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPKI:
    return make_test_pki(tmp_path_factory.mktemp("ch-pki"))


@pytest.fixture()
def endpoint(pki: LocalPKI) -> Iterator[_RecordingTLSEndpoint]:
    server = _RecordingTLSEndpoint(pki)
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _connect_error(**settings: object) -> str:
    with pytest.raises(OperatorError) as caught:
        connect_store(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    message = caught.value.message
    assert "\n" not in message
    assert SECRET not in message
    return message


@pytest.fixture()
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "clickhouse-password"
    path.write_text(SECRET + "\n")  # as `echo ... > file` writes it: the newline is not part of the password
    return path


def test_certificate_not_signed_by_a_trusted_ca_is_refused(endpoint: _RecordingTLSEndpoint, pki: LocalPKI,
                                                           password_file: Path) -> None:
    url = f"https://ops@127.0.0.1:{endpoint.port}/llm"
    message = _connect_error(clickhouse_url=url, clickhouse_password_file=password_file)
    assert f"https://ops@127.0.0.1:{endpoint.port}/llm" in message
    assert "not trusted" in message and "LLMPULSE_CLICKHOUSE_CA_FILE" in message
    message = _connect_error(clickhouse_url=url, clickhouse_password_file=password_file,
                             clickhouse_ca_file=pki.other_ca_file)
    assert "not trusted" in message
    assert endpoint.authorizations == [], "no request (and no password) may cross an unverified connection"


def test_ca_file_makes_the_server_trusted_and_the_password_file_is_sent(
    endpoint: _RecordingTLSEndpoint, pki: LocalPKI, password_file: Path
) -> None:
    url = f"https://ops@127.0.0.1:{endpoint.port}/llm"
    message = _connect_error(clickhouse_url=url, clickhouse_password_file=password_file, clickhouse_ca_file=pki.ca_file)
    # The TLS handshake succeeded: what fails now is the HTTP answer of this stand-in, not the certificate.
    assert "not trusted" not in message and "stand-in endpoint" in message
    assert f"https://ops@127.0.0.1:{endpoint.port}/llm" in message
    assert endpoint.basic_passwords() and set(endpoint.basic_passwords()) == {SECRET}


def test_password_in_the_url_still_works_and_is_masked(endpoint: _RecordingTLSEndpoint, pki: LocalPKI) -> None:
    url = f"https://ops:{SECRET}@127.0.0.1:{endpoint.port}/llm"
    message = _connect_error(clickhouse_url=url, clickhouse_ca_file=pki.ca_file)
    assert f"https://ops:***@127.0.0.1:{endpoint.port}/llm" in message
    assert set(endpoint.basic_passwords()) == {SECRET}


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_can_be_turned_off_explicitly(endpoint: _RecordingTLSEndpoint) -> None:
    _connect_error(clickhouse_url=f"https://ops:{SECRET}@127.0.0.1:{endpoint.port}/llm", clickhouse_tls_verify=False)
    assert endpoint.authorizations, "with verify off the request goes through"


def test_plain_http_to_a_tls_port_is_explained(endpoint: _RecordingTLSEndpoint) -> None:
    message = _connect_error(clickhouse_url=f"http://ops:{SECRET}@127.0.0.1:{endpoint.port}/llm")
    assert f"http://ops:***@127.0.0.1:{endpoint.port}/llm" in message
    assert "LLMPULSE_CLICKHOUSE_URL" in message
