"""HTTP to Alertmanager: POST /api/v2/alerts to one instance. The dispatcher owns retries and fan-out."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson


class AlertmanagerURLError(ValueError):
    """A configured Alertmanager URL cannot be used."""


class DeliveryError(Exception):
    """A POST that Alertmanager did not accept. `reason` is a metrics label: unreachable, timeout,
    http_4xx, http_5xx."""

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


def parse_alertmanager_url(url: str) -> AlertmanagerEndpoint:
    """`http(s)://[user:pass@]host:port[/prefix]` → the API v2 alerts endpoint (a --web.route-prefix
    or a reverse-proxy path is kept)."""
    raw = url.strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertmanagerURLError(
            f"Alertmanager URL {url!r} must look like http://host:9093 (LLMPULSE_ALERTMANAGER_URL, comma-separated)"
        )
    if parts.query or parts.fragment:
        raise AlertmanagerURLError(f"Alertmanager URL {url!r} must not have a query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise AlertmanagerURLError(f"Alertmanager URL {url!r} has an invalid port") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/api/v2/alerts"):
        path = path[: -len("/api/v2/alerts")]
    base = urlunsplit((parts.scheme, netloc, path, "", ""))
    authorization = None
    if parts.username is not None:
        token = f"{parts.username}:{parts.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(token).decode("ascii")
    return AlertmanagerEndpoint(alerts_url=f"{base}/api/v2/alerts", base_url=base, authorization=authorization)


class AlertmanagerClient:
    """POSTs alerts to one Alertmanager; raises DeliveryError when it does not answer 2xx."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.endpoint = parse_alertmanager_url(url)
        self.name = self.endpoint.base_url
        self.timeout = timeout

    def post(self, alerts: Sequence[dict[str, Any]]) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "llmpulse-alerts"}
        if self.endpoint.authorization:
            headers["Authorization"] = self.endpoint.authorization
        request = urllib.request.Request(
            self.endpoint.alerts_url, data=orjson.dumps(list(alerts)), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()[:500].decode("utf-8", "replace").strip()
            reason = "http_5xx" if exc.code >= 500 or exc.code == 429 else "http_4xx"
            raise DeliveryError(reason, f"{self.name} answered {exc.code}: {body or exc.reason}") from None
        except TimeoutError:
            raise DeliveryError("timeout", f"{self.name} did not answer within {self.timeout:g}s") from None
        except (urllib.error.URLError, OSError) as exc:
            cause = getattr(exc, "reason", exc)
            if isinstance(cause, TimeoutError):
                raise DeliveryError("timeout", f"{self.name} did not answer within {self.timeout:g}s") from None
            raise DeliveryError("unreachable", f"{self.name} unreachable: {cause}") from None

    def __repr__(self) -> str:
        return f"AlertmanagerClient({self.name!r})"
