"""The one way llmpulse opens ClickHouse: clickhouse-connect, for the embedded chDB engine and servers alike."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

EMBEDDED_SCHEME = "chdb"

# chDB holds one data path per process (clients on that path share it); remember it to explain a clash.
_embedded_path: str | None = None
_embedded_lock = threading.Lock()


class StoreURLError(ValueError):
    """The configured ClickHouse URL cannot be used."""


def is_embedded(url: str) -> bool:
    return urlparse(url).scheme == EMBEDDED_SCHEME


def embedded_path(url: str) -> Path:
    """Data directory of a `chdb://` URL; `chdb://./x` and `chdb://x` are relative, `chdb:///x` absolute."""
    parsed = urlparse(url)
    if parsed.scheme != EMBEDDED_SCHEME:
        raise StoreURLError(f"not an embedded store URL: {url!r}")
    raw = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
    if not raw:
        raise StoreURLError(f"embedded store URL {url!r} names no data directory (try chdb://./.llmpulse/data)")
    return Path(raw).expanduser().resolve()


def connect(url: str, *, database: str | None = None) -> Client:
    """A clickhouse-connect client for `chdb://PATH` (embedded) or `http(s)://user:pass@host:port/db`."""
    parsed = urlparse(url)
    if parsed.scheme == EMBEDDED_SCHEME:
        global _embedded_path
        path = embedded_path(url)
        with _embedded_lock:
            if _embedded_path is not None and _embedded_path != str(path):
                raise StoreURLError(
                    f"this process already uses the embedded store at {_embedded_path}; "
                    f"chDB allows one data path per process, so {path} cannot be opened too"
                )
            path.mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            _embedded_path = str(path)
        if database:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            client.database = database
        return client
    if parsed.scheme in ("http", "https"):
        db = database or (parsed.path.strip("/") or None)
        client = clickhouse_connect.get_client(
            host=parsed.hostname or "localhost",
            port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
            username=parsed.username or "default",
            password=parsed.password or "",
            database=db or "default",
            secure=parsed.scheme == "https",
            compress="lz4",
        )
        return client
    raise StoreURLError(
        f"unsupported ClickHouse URL scheme {parsed.scheme!r} in {url!r}: "
        "use chdb://PATH for the embedded store or http(s)://user:pass@host:8123/db for a server"
    )
