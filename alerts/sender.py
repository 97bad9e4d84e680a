"""HTTP to Alertmanager: POST /api/v2/alerts to one instance. The dispatcher owns retries and fan-out."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson

from llmpulse.urls import display_url


class AlertmanagerURLError(ValueError):
    """A configured Alertmanager URL cannot be used."""


class DeliveryError(Exception):
    """A POST that Alertmanager did not accept. `reason` is a metrics label: unreachable, timeout, tls,
    unauthorized (401/403), http_4xx, http_5xx. The message names the Alertmanager without credentials."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AlertSink(Protocol):
    """One Alertmanager (or anything that accepts API v2 alerts). `name` is safe to log and label."""

    name: str

    def post(self, alerts: Sequence[dict[str, Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class AlertmanagerEndpoint:
    alerts_url: str  # .../api/v2/alerts
    base_url: str  # without credentials: the metrics label and what logs show
    authorization: str | None  # from user:password@ in the configured URL


@dataclass(frozen=True, slots=True)
class AlertmanagerAuth:
    """How llmpulse authenticates to, and trusts, every configured Alertmanager (its --web.config.file:
    basic_auth_users, tls_server_config). Basic auth (`username`/`password`) or a bearer token, not both;
    a user:pass@ in one URL wins over `username`/`password` for that URL. `ca_file`: the CA that signed
    the servers' certificates (None: the system's); client cert/key for mTLS."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    verify: bool = True
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.bearer_token and (self.username or self.password):
            raise AlertmanagerURLError("Alertmanager: set basic auth (username/password) or a bearer token, not both")
        if self.password and not self.username:
            raise AlertmanagerURLError("Alertmanager: a basic-auth password is set without a username")
        if self.client_key_file is not None and self.client_cert_file is None:
            raise AlertmanagerURLError("Alertmanager: a client key is set without a client certificate")

    def __repr__(self) -> str:  # never the secrets
        return (f"AlertmanagerAuth(username={self.username!r}, password={'***' if self.password else None}, "
                f"bearer_token={'***' if self.bearer_token else None}, verify={self.verify}, ca_file={self.ca_file})")

    def authorization(self) -> str | None:
        if self.bearer_token:
            return f"Bearer {self.bearer_token}"
        if self.username:
            return _basic(self.username, self.password or "")
        return None

    def ssl_context(self) -> ssl.SSLContext:
        """For https:// URLs: the system's trust store plus, or replaced by, `ca_file`."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file is not None:
            context.load_cert_chain(
                str(self.client_cert_file), str(self.client_key_file) if self.client_key_file else None
            )
        return context


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def parse_alertmanager_url(url: str) -> AlertmanagerEndpoint:
    """`http(s)://[user:pass@]host:port[/prefix]` → the API v2 alerts endpoint (a --web.route-prefix
    or a reverse-proxy path is kept)."""
    raw = url.strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertmanagerURLError(
            f"Alertmanager URL {display_url(url)!r} must look like http://host:9093 "
            "(LLMPULSE_ALERTMANAGER_URL, comma-separated)"
        )
    if parts.query or parts.fragment:
        raise AlertmanagerURLError(f"Alertmanager URL {display_url(url)!r} must not have a query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise AlertmanagerURLError(f"Alertmanager URL {display_url(url)!r} has an invalid port") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/api/v2/alerts"):
        path = path[: -len("/api/v2/alerts")]
    base = urlunsplit((parts.scheme, netloc, path, "", ""))
    authorization = None
    if parts.username is not None:
        authorization = _basic(unquote(parts.username), unquote(parts.password or ""))
    return AlertmanagerEndpoint(alerts_url=f"{base}/api/v2/alerts", base_url=base, authorization=authorization)


class AlertmanagerClient:
    """POSTs alerts to one Alertmanager; raises DeliveryError when it does not answer 2xx."""

    def __init__(self, url: str, *, timeout: float = 10.0, auth: AlertmanagerAuth | None = None) -> None:
        self.endpoint = parse_alertmanager_url(url)
        self.name = self.endpoint.base_url
        self.timeout = timeout
        auth = auth or AlertmanagerAuth()
        self.authorization = self.endpoint.authorization or auth.authorization()
        try:
            self._context = auth.ssl_context() if self.endpoint.base_url.startswith("https://") else None
        except (OSError, ssl.SSLError) as exc:
            raise AlertmanagerURLError(
                f"Alertmanager {self.name}: cannot load the CA or client certificate: {exc}"
            ) from None

    def request(self, path: str, *, data: bytes | None = None, method: str = "GET") -> bytes:
        """One call to this Alertmanager's API (`path` like /api/v2/status) with its credentials and TLS
        settings; raises DeliveryError."""
        headers = {"User-Agent": "llmpulse-alerts"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.authorization:
            headers["Authorization"] = self.authorization
        request = urllib.request.Request(self.endpoint.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            text = exc.read()[:500].decode("utf-8", "replace").strip()
            if exc.code in (401, 403):
                hint = ("check LLMPULSE_ALERTMANAGER_USERNAME/_PASSWORD(_FILE) or _BEARER_TOKEN(_FILE)"
                        if exc.code == 401 else "the credentials are not allowed here")
                raise DeliveryError(
                    "unauthorized", f"{self.name} answered {exc.code} {exc.reason}: {hint}"
                ) from None
            reason = "http_5xx" if exc.code >= 500 or exc.code == 429 else "http_4xx"
            raise DeliveryError(reason, f"{self.name} answered {exc.code}: {text or exc.reason}") from None
        except TimeoutError:
            raise DeliveryError("timeout", f"{self.name} did not answer within {self.timeout:g}s") from None
        except (urllib.error.URLError, OSError) as exc:
            cause = getattr(exc, "reason", exc)
            if isinstance(cause, TimeoutError):
                raise DeliveryError("timeout", f"{self.name} did not answer within {self.timeout:g}s") from None
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise DeliveryError(
                    "tls", f"{self.name}: TLS certificate not trusted ({cause.verify_message}); "
                    "set LLMPULSE_ALERTMANAGER_CA_FILE to the CA that signed it",
                ) from None
            if isinstance(cause, ssl.SSLError):
                raise DeliveryError("tls", f"{self.name}: TLS failed ({cause.reason or cause})") from None
            raise DeliveryError("unreachable", f"{self.name} unreachable: {cause}") from None

    def post(self, alerts: Sequence[dict[str, Any]]) -> None:
        self.request("/api/v2/alerts", data=orjson.dumps(list(alerts)), method="POST")

    def __repr__(self) -> str:
        return f"AlertmanagerClient({self.name!r})"
