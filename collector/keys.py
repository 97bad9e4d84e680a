"""API keys: generation, hashing, the key store (a Protocol, with ClickHouse behind it) and the `Authenticator`
every front end uses (collector.auth).

A key is `llmp_` + 43 URL-safe characters (32 random bytes). Only its SHA-256 is stored, with its first
characters for recognising it in `keys list`; the key itself is shown once, when created. SHA-256 (not a slow
password hash) is right for 256-bit random keys: nobody can guess one, and checking costs ~1 µs per request.

Authentication reads an in-memory snapshot of the active keys, reloaded from the store at most every
`refresh_s` (2 s): a revoked key stops working within that, a new key starts working within that, and a
request costs one hash and one dict lookup. When the store cannot be read for longer than `max_stale_s`,
requests are refused (503) rather than trusting a snapshot that may still hold a revoked key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from clickhouse_connect.driver.client import Client

from collector.auth import AuthError, Principal, Scope

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "llmp_"
_KEY_BYTES: Final = 32
_SHOWN_PREFIX_CHARS: Final = 4
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_APP: Final = 128


class KeyStoreError(ValueError):
    """A key operation that cannot be done (bad name, name taken, no such key); the message says why."""


class KeyExists(KeyStoreError):
    pass


class KeyNotFound(KeyStoreError):
    pass


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: everything but the key."""

    name: str
    scope: Scope
    apps: tuple[str, ...]
    key_hash: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(name=self.name, scope=self.scope, apps=frozenset(self.apps))


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def shown_prefix(key: str) -> str:
    """What `keys list` shows so a person can tell which key they hold: `llmp_AbCd…`."""
    return key[: len(KEY_PREFIX) + _SHOWN_PREFIX_CHARS]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise KeyStoreError(
            f"invalid key name {name!r}: 1-64 characters, letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def check_apps(apps: Iterable[str]) -> tuple[str, ...]:
    checked = []
    for app in apps:
        if not app or len(app) > _MAX_APP or app != app.strip():
            raise KeyStoreError(f"invalid app {app!r}: 1-{_MAX_APP} characters without surrounding spaces")
        if app not in checked:
            checked.append(app)
    return tuple(sorted(checked))


class KeyStore(Protocol):
    def all_keys(self) -> list[ApiKey]:
        """The latest state of every key name, revoked ones included, by name."""
        ...

    def put(self, key: ApiKey) -> None:
        """Store `key` as the latest state of its name."""
        ...


def create_key(
    store: KeyStore,
    name: str,
    scope: Scope,
    apps: Sequence[str] = (),
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[ApiKey, str]:
    """A new key named `name`: (its stored record, the key itself, to be shown once). A revoked key's name
    may be reused; an active one's may not."""
    check_name(name)
    record_apps = check_apps(apps)
    existing = {key.name: key for key in store.all_keys()}
    current = existing.get(name)
    if current is not None and current.active:
        raise KeyExists(f"an active key named {name!r} exists; revoke it first or choose another name")
    key = generate_key()
    record = ApiKey(
        name=name,
        scope=scope,
        apps=record_apps,
        key_hash=hash_key(key),
        key_prefix=shown_prefix(key),
        created_at=clock(),
    )
    store.put(record)
    return record, key


def revoke_key(
    store: KeyStore, name: str, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> ApiKey:
    """Revoke the active key `name`; authentication refuses it within the authenticator's refresh interval."""
    current = {key.name: key for key in store.all_keys()}.get(name)
    if current is None:
        raise KeyNotFound(f"no key named {name!r}")
    if not current.active:
        raise KeyNotFound(f"the key named {name!r} is already revoked")
    revoked = ApiKey(
        name=current.name,
        scope=current.scope,
        apps=current.apps,
        key_hash=current.key_hash,
        key_prefix=current.key_prefix,
        created_at=current.created_at,
        revoked_at=clock(),
    )
    store.put(revoked)
    return revoked


class ClickHouseKeyStore:
    """Keys in the `api_keys` table (llmpulse/migrations/0060_api_keys.sql): one row per change."""

    _COLUMNS: Final = ("name", "key_hash", "key_prefix", "scope", "apps", "created_at", "revoked_at", "version")

    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = threading.Lock()

    def all_keys(self) -> list[ApiKey]:
        rows = self._client.query(
            "SELECT name, argMax(scope, version), argMax(apps, version), argMax(key_hash, version), "
            "argMax(key_prefix, version), argMax(created_at, version), argMax(revoked_at, version) "
            "FROM api_keys GROUP BY name ORDER BY name"
        ).result_rows
        return [
            ApiKey(
                name=name,
                scope=Scope(scope),
                apps=tuple(apps),
                key_hash=key_hash,
                key_prefix=key_prefix,
                created_at=_utc(created_at),
                revoked_at=_utc(revoked_at) if revoked_at is not None else None,
            )
            for name, scope, apps, key_hash, key_prefix, created_at, revoked_at in rows
        ]

    def put(self, key: ApiKey) -> None:
        with self._lock:
            # Nanoseconds since the epoch: a later change of the same name always has a higher version.
            version = time.time_ns()
            self._client.insert(
                "api_keys",
                [[key.name, key.key_hash, key.key_prefix, key.scope.value, list(key.apps), key.created_at,
                  key.revoked_at, version]],
                column_names=list(self._COLUMNS),
            )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def bearer_key(authorization: str | None) -> str | None:
    """The key in `Authorization: Bearer KEY`, or the password of `Basic base64(user:KEY)` (browsers opening
    /docs, scrapers configured with basic auth). None if there is none."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        import base64
        import binascii

        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def scope_allows(granted: Scope, required: Scope | None) -> bool:
    """admin may do everything; ingest and read are disjoint (a leaked ingest key reads nothing, a dashboard's
    read key writes nothing). `required` None: any valid key."""
    return required is None or granted is Scope.ADMIN or granted is required


class KeyAuthenticator:
    """The `Authenticator` over a `KeyStore`, with the snapshot cache described in the module docstring."""

    def __init__(
        self,
        store: KeyStore,
        *,
        refresh_s: float = 2.0,
        max_stale_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._max_stale_s = max_stale_s
        self._monotonic = monotonic
        self._by_hash: dict[str, ApiKey] = {}
        self._loaded_at: float | None = None
        self._refresh_lock = threading.Lock()
        self._last_error: str | None = None

    @property
    def key_count(self) -> int:
        self._snapshot()
        return len(self._by_hash)

    def reload(self) -> None:
        """Read the store now (also done on demand every `refresh_s`)."""
        keys = self._store.all_keys()
        self._by_hash = {key.key_hash: key for key in keys if key.active}
        self._loaded_at = self._monotonic()
        if self._last_error is not None:
            log.info("API keys readable again from the store")
            self._last_error = None

    def _snapshot(self) -> dict[str, ApiKey]:
        loaded_at = self._loaded_at
        now = self._monotonic()
        if loaded_at is not None and now - loaded_at < self._refresh_s:
            return self._by_hash
        stale = loaded_at is None or now - loaded_at >= self._max_stale_s
        # One request thread reloads; the others keep using the snapshot unless it is too old to trust.
        if self._refresh_lock.acquire(blocking=stale):
            try:
                if self._loaded_at == loaded_at:
                    try:
                        self.reload()
                    except Exception as exc:
                        message = f"{type(exc).__name__}: {str(exc)[:200]}"
                        if message != self._last_error:
                            log.warning("cannot read API keys from the store: %s", message)
                        self._last_error = message
            finally:
                self._refresh_lock.release()
        loaded_at = self._loaded_at
        if loaded_at is None or self._monotonic() - loaded_at >= self._max_stale_s:
            raise AuthError(503, "API keys cannot be checked: the store is unavailable; retry later")
        return self._by_hash

    def authenticate(self, authorization: str | None, scope: Scope | None) -> Principal:
        key = bearer_key(authorization)
        if key is None:
            raise AuthError(401, "missing API key: send 'Authorization: Bearer <key>' (llmpulse keys create)")
        digest = hash_key(key)
        record = self._snapshot().get(digest)
        # The lookup is by hash; comparing the digests again in constant time keeps the check itself flat.
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise AuthError(401, "unknown or revoked API key")
        if not scope_allows(record.scope, scope):
            raise AuthError(
                403, f"API key {record.name!r} has scope {record.scope.value!r}; this needs {scope} (or admin)"
            )
        return record.principal()
