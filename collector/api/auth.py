"""FastAPI side of `collector.auth`: a dependency per scope, reading the authenticator from app.state."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from collector.auth import AllowAll, Authenticator, AuthError, Principal, Scope


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = getattr(request.app.state, "authenticator", None) or AllowAll()
    return authenticator


def require_scope(scope: Scope) -> Callable[[Request], Principal]:
    """`Depends(require_scope(Scope.READ))` on a route: 401/403 before the handler runs."""

    def dependency(request: Request) -> Principal:
        try:
            return get_authenticator(request).authenticate(request.headers.get("authorization"), scope)
        except AuthError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise HTTPException(exc.status, exc.message, headers=headers) from None

    return dependency
