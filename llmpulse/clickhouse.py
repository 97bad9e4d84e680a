"""The one way llmpulse opens ClickHouse: clickhouse-connect, for the embedded chDB engine and servers alike."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from llmpulse.urls import display_url

EMBEDDED_SCHEME = "chdb"

# chDB holds one data path per process (clients on that path share it); remember it to explain a clash.
_embedded_path: str | None = None
_embedded_lock = threading.Lock()


class StoreURLError(ValueError):
    """The configured ClickHouse URL cannot be used."""


class StoreLockedError(StoreURLError):
    """Another process has the embedded store open (chDB: one process per data path)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"another process (pid {pid})" if pid is not None else "another process"
        super().__init__(f"{holder} holds the embedded store at {path}")
        self.path = path
        self.pid = pid


@dataclass(frozen=True, slots=True)
class StoreHolder:
    pid: int | None  # None: the status file did not say


def embedded_store_holder(path: Path) -> StoreHolder | None:
    """The other process that has the embedded store at `path` open, None when none has. chDB holds an
    exclusive flock on `<path>/status`, which also records the holder's pid."""
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        with contextlib.suppress(OSError, ValueError):
            for line in os.read(fd, 4096).decode("utf-8", "replace").splitlines():
                if line.startswith("PID:"):
                    return StoreHolder(int(line.split(":", 1)[1]))
        return StoreHolder(None)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """How an https:// ClickHouse server is trusted. `verify` stays on unless an operator turns it off;
    `ca_file` is the CA bundle that signed the server's certificate (None: the system's trust store);
    `client_cert_file`/`client_key_file` for servers that require client certificates (mTLS)."""

    verify: bool = True
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None


def server_client_kwargs(url: str, *, password: str | None = None, tls: ServerTLS | None = None,
                         database: str | None = None) -> dict[str, object]:
    """The clickhouse-connect `get_client` arguments for an http(s) URL (pure: no connection is made).

    `password` is used when the URL carries none; a URL with a password and a separate one is ambiguous."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise StoreURLError(f"not a ClickHouse server URL: {display_url(url)}")
    if parsed.password is not None and password is not None:
        raise StoreURLError(
            f"{display_url(url)} carries a password and a password file is configured too: keep only one"
        )
    secure = parsed.scheme == "https"
    tls = tls or ServerTLS()
    if not secure and (tls.ca_file or tls.client_cert_file or tls.client_key_file):
        raise StoreURLError(f"a CA or client certificate is configured for {display_url(url)}, which is not https://")
    if tls.client_key_file is not None and tls.client_cert_file is None:
        raise StoreURLError("LLMPULSE_CLICKHOUSE_CLIENT_KEY_FILE is set without LLMPULSE_CLICKHOUSE_CLIENT_CERT_FILE")
    db = database or (parsed.path.strip("/") or None)
    try:
        port = parsed.port
    except ValueError:
        raise StoreURLError(f"{display_url(url)} has an invalid port") from None
    kwargs: dict[str, object] = {
        "host": parsed.hostname or "localhost",
        "port": port or (8443 if secure else 8123),
        "username": unquote(parsed.username) if parsed.username else "default",
        "password": unquote(parsed.password) if parsed.password is not None else (password or ""),
        "database": db or "default",
        "secure": secure,
        "compress": "lz4",
    }
    if secure:
        kwargs["verify"] = tls.verify
        if tls.ca_file is not None:
            kwargs["ca_cert"] = str(tls.ca_file)
        if tls.client_cert_file is not None:
            kwargs["client_cert"] = str(tls.client_cert_file)
        if tls.client_key_file is not None:
            kwargs["client_cert_key"] = str(tls.client_key_file)
    return kwargs


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


def connect(
    url: str, *, database: str | None = None, password: str | None = None, tls: ServerTLS | None = None
) -> Client:
    """A clickhouse-connect client for `chdb://PATH` (embedded) or `http(s)://user:pass@host:port/db`.

    `password` (e.g. read from LLMPULSE_CLICKHOUSE_PASSWORD_FILE) and `tls` apply to servers only."""
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
            if _embedded_path is None:
                # chDB prints its own lock error on stderr and raises a vague one: look first, and name the holder.
                holder = embedded_store_holder(path)
                if holder is not None:
                    raise StoreLockedError(path, holder.pid)
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            _embedded_path = str(path)
        if database:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            client.database = database
        return client
    if parsed.scheme in ("http", "https"):
        return clickhouse_connect.get_client(
            **server_client_kwargs(url, password=password, tls=tls, database=database)  # type: ignore[arg-type]
        )
    raise StoreURLError(
        f"unsupported ClickHouse URL scheme {parsed.scheme!r} in {display_url(url)}: "
        "use chdb://PATH for the embedded store or http(s)://user:pass@host:8123/db for a server"
    )
