"""Who is calling: API keys, their scopes and the apps they may write. Framework-free, so the HTTP API and the
OTLP/gRPC receiver share one check.

This is the seam every front end uses; the key store behind `Authenticator` lives at the edge
(collector/keys.py: `KeyAuthenticator`). Scopes: admin may do everything; ingest only writes, read only reads
(disjoint, so a key leaked from an app cannot read anyone's prompts). docs/security.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `apps` empty means every app."""

    name: str
    scope: Scope
    apps: frozenset[str] = field(default_factory=frozenset)

    def may_write(self, app: str) -> bool:
        return not self.apps or app in self.apps


# The caller when auth is disabled (LLMPULSE_AUTH_DISABLED=true): may do everything.
ANONYMOUS = Principal(name="anonymous", scope=Scope.ADMIN)


class AuthError(Exception):
    """401 (no, unknown or revoked key) or 403 (key lacks the scope); the message never contains the key."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Authenticator(Protocol):
    def authenticate(self, authorization: str | None, scope: Scope | None) -> Principal:
        """`authorization` is the raw `Authorization` header (or gRPC metadata) value; `scope` None accepts
        any valid key (e.g. /docs). Raises AuthError: 401 no/unknown/revoked key, 403 scope, 503 key store
        unreadable."""
        ...


class AllowAll:
    """Auth disabled (LLMPULSE_AUTH_DISABLED=true): every caller is ANONYMOUS."""

    def authenticate(self, authorization: str | None, scope: Scope | None) -> Principal:
        return ANONYMOUS
