"""FastAPI side of `collector.auth`: a dependency per scope, reading the authenticator from app.state.

`require_scope(...)` marks the dependency it returns, so `create_app` can refuse to build an app with a route
that has none (`unguarded_routes`): a route added later cannot be left open by forgetting it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from collector.auth import Authenticator, AuthError, Principal, Scope

# Routes that answer without a key: liveness only (load balancers and orchestrators probe it keyless).
PUBLIC_PATHS: Final = frozenset({"/healthz"})
CHALLENGE: Final = 'Bearer realm="llmpulse", Basic realm="llmpulse"'
_MARK: Final = "__llmpulse_scope__"


class _NoAuthenticator:
    """An app built without `create_app`'s authenticator refuses everything rather than allowing it."""

    def authenticate(self, authorization: str | None, scope: Scope | None) -> Principal:
        raise AuthError(503, "no authenticator is configured for this API")


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = getattr(request.app.state, "authenticator", None) or _NoAuthenticator()
    return authenticator


def require_scope(scope: Scope | None) -> Callable[[Request], Principal]:
    """`Depends(require_scope(Scope.READ))` on a route: 401/403 before the handler runs; the handler may take
    the returned Principal (`principal: Principal = Depends(require_scope(Scope.INGEST))`). `None`: any
    valid key, whatever its scope."""

    def dependency(request: Request) -> Principal:
        try:
            return get_authenticator(request).authenticate(request.headers.get("authorization"), scope)
        except AuthError as exc:
            failures = getattr(request.app.state, "auth_failures", None)
            if failures is not None:
                failures.labels(str(exc.status)).inc()
            headers = {"WWW-Authenticate": CHALLENGE} if exc.status == 401 else None
            if exc.status == 503:
                headers = {"Retry-After": "5"}
            raise HTTPException(exc.status, exc.message, headers=headers) from None

    setattr(dependency, _MARK, scope)
    dependency.__name__ = f"require_scope_{scope.value if scope else 'any'}"
    return dependency


def _guarded(dependant: Dependant) -> bool:
    for sub in dependant.dependencies:
        if sub.call is not None and hasattr(sub.call, _MARK):
            return True
        if _guarded(sub):
            return True
    return False


def route_is_guarded(route: APIRoute) -> bool:
    return _guarded(route.dependant)


def unguarded_routes(routes: Iterable[BaseRoute]) -> list[str]:
    """`METHOD path` of every route that answers without `require_scope`, except PUBLIC_PATHS. Routes that
    are not FastAPI routes (mounts, plain Starlette routes) cannot carry the dependency: they count too."""
    open_routes = []
    for route in routes:
        path: Any = getattr(route, "path", repr(route))
        if path in PUBLIC_PATHS:
            continue
        if isinstance(route, APIRoute) and route_is_guarded(route):
            continue
        methods = ",".join(sorted(getattr(route, "methods", None) or ["*"]))
        open_routes.append(f"{methods} {path}")
    return open_routes
