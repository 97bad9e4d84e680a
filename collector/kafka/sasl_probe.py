"""One synchronous SASL login against a broker, to tell "credentials rejected" from "no answer" deterministically.

Why not rely on kafka-python's own bootstrap: when a login fails, the broker sends the SaslAuthenticate
error response and closes the connection ~100 ms later (`connection.failed.authentication.delay.ms`). A client
that reads late (a loaded machine) receives the response and the close in one read, and kafka-python 3 then
drops the bytes it read and reports only `KafkaConnectionError: socket disconnected`, on every retry, until its
bootstrap times out. The probe reads framed responses off a blocking socket, so a response that arrived before
the close is always seen.

`probe_sasl_login` speaks the same protocol as kafka-python's connection (SaslHandshake v1, then SaslAuthenticate
v1 with kafka-python's mechanism implementations) with the same TLS settings, once per bootstrap server until one
answers. It never raises: anything other than a broker's verdict (refused connection, TLS failure, timeout,
unexpected bytes) is `inconclusive`, and the caller's normal bootstrap reports it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kafka.errors import for_code
from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

Verdict = Literal["accepted", "rejected", "inconclusive"]


@dataclass(frozen=True, slots=True)
class SaslProbeResult:
    """`rejected`: the broker refused the login (`reason` is its error, never the password)."""

    verdict: Verdict
    reason: str = ""


class _Inconclusive(Exception):
    pass


def _bootstrap_servers(value: Any) -> list[tuple[str, int]]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    servers = []
    for item in items:
        host, _, port = str(item).strip().rpartition(":")
        if host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
    return servers


def _tls_context(kwargs: Mapping[str, Any]) -> ssl.SSLContext:
    # The same context kafka-python's KafkaSSLTransport builds from these kwargs.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = bool(kwargs.get("ssl_check_hostname", True))
    if kwargs.get("ssl_cafile"):
        context.load_verify_locations(kwargs["ssl_cafile"])
    else:
        context.load_default_certs()
    if kwargs.get("ssl_certfile"):
        context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"), kwargs.get("ssl_password"))
    return context


class _Connection:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._parser = KafkaProtocol(client_id="llmpulse-preflight")

    def call(self, request: Any) -> Any:
        self._parser.send_request(request)
        self._settimeout()
        self._sock.sendall(self._parser.send_bytes())
        while True:
            self._settimeout()
            data = self._sock.recv(65536)
            if not data:
                raise _Inconclusive("the broker closed the connection without an answer")
            responses = self._parser.receive_bytes(data)
            if responses:
                return responses[0][1]

    def _settimeout(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _Inconclusive("timed out")
        self._sock.settimeout(remaining)


def _login(host: str, port: int, kwargs: Mapping[str, Any], deadline: float) -> SaslProbeResult:
    raw = socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.1))
    sock: socket.socket = raw
    try:
        if str(kwargs.get("security_protocol")) == "SASL_SSL":
            sock = _tls_context(kwargs).wrap_socket(raw, server_hostname=host.rstrip("."))
        connection = _Connection(sock, deadline)
        mechanism_name = str(kwargs.get("sasl_mechanism"))
        handshake = connection.call(SaslHandshakeRequest(mechanism=mechanism_name, version=1))
        if handshake.error_code:
            enabled = ", ".join(getattr(handshake, "mechanisms", None) or []) or "none"
            return SaslProbeResult(
                "rejected", f"the broker does not enable SASL mechanism {mechanism_name} (it offers: {enabled})"
            )
        mechanism = get_sasl_mechanism(mechanism_name)(host=host, **dict(kwargs))
        while not mechanism.is_done():
            response = connection.call(SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes(), version=1))
            if response.error_code:
                error = for_code(response.error_code).__name__
                return SaslProbeResult("rejected", f"{error}: {response.error_message or 'no details'}")
            try:
                mechanism.receive(response.auth_bytes)
            except ValueError as exc:
                # The server's final message did not verify (SCRAM): not the broker we meant, or a broken one.
                return SaslProbeResult("rejected", f"the broker's SASL answer did not verify: {exc}")
        return SaslProbeResult("accepted") if mechanism.is_authenticated() else SaslProbeResult(
            "rejected", f"SASL {mechanism_name} login not accepted"
        )
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def probe_sasl_login(client_kwargs: Mapping[str, Any], *, timeout_s: float) -> SaslProbeResult:
    """Log in once with `client_kwargs` (kafka-python kwargs with SASL settings) to the first server that answers."""
    if not str(client_kwargs.get("security_protocol", "")).startswith("SASL_"):
        return SaslProbeResult("inconclusive", "not a SASL protocol")
    if client_kwargs.get("sasl_mechanism") not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        return SaslProbeResult("inconclusive", "mechanism not probed")
    deadline = time.monotonic() + timeout_s
    last = "no bootstrap server"
    for host, port in _bootstrap_servers(client_kwargs.get("bootstrap_servers")):
        if time.monotonic() >= deadline:
            break
        try:
            return _login(host, port, client_kwargs, deadline)
        except _Inconclusive as exc:
            last = str(exc)
        except Exception as exc:  # refused, TLS, protocol: the regular bootstrap reports these
            last = f"{type(exc).__name__}: {exc}"
    return SaslProbeResult("inconclusive", last)
