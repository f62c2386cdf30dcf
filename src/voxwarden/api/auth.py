"""API-key authentication: ``Authorization: Bearer vw_<prefix>_<secret>``, scopes and tenant binding.

No or an unknown/revoked/expired key → 401; a valid key without the needed scope → 403. The resulting
`Principal` carries the key's tenant, and every query a route makes is scoped to it, so another
tenant's ids look exactly like missing ones (404).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from voxwarden.api.errors import ApiError
from voxwarden.store import AuditContext, Store
from voxwarden.store.errors import AuthError
from voxwarden.store.keys import authenticate_key, key_scopes

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="voxwarden"'}
# declares the bearer scheme in the OpenAPI document; the header itself is parsed by `bearer_token`
_openapi_bearer = HTTPBearer(auto_error=False, bearerFormat="vw_<prefix>_<secret>",
                             description="API key made with `voxwarden admin create-key`")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key's id and prefix, its tenant and its scopes."""

    key_id: str
    key_prefix: str
    tenant_id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"key:{self.key_prefix}"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def bearer_token(request: Request) -> str:
    """The token from the Authorization header, or 401."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <token>'", _CHALLENGE)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise ApiError(401, "unauthorized", "malformed Authorization header: expected 'Bearer <token>'", _CHALLENGE)
    return token


def authenticate(store: Store, token: str) -> Principal:
    """Check the token against the store (records its last use); 401 if it is not a live key."""
    try:
        with store.session() as s:
            key = authenticate_key(s, token)
            return Principal(key.id, key.prefix, key.tenant_id, key_scopes(key))
    except AuthError as e:
        raise ApiError(401, "unauthorized", str(e), _CHALLENGE) from e


def require(*scopes: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: a live key holding any one of `scopes` (admin holds all)."""

    def dependency(
        request: Request, _doc: HTTPAuthorizationCredentials | None = Depends(_openapi_bearer)
    ) -> Principal:  # sync: FastAPI runs it in its thread pool
        token = bearer_token(request)
        principal = authenticate(request.app.state.store, token)
        if not any(principal.allows(sc) for sc in scopes):
            need = " or ".join(repr(sc) for sc in scopes)
            raise ApiError(403, "forbidden", f"API key lacks the {need} scope")
        request.state.principal = principal
        return principal

    return dependency


def audit_context(conn: HTTPConnection, principal: Principal) -> AuditContext:
    """Account, network origin and destination, and user agent of a request or WebSocket, for the audit log."""
    client = conn.client
    server = conn.scope.get("server") or (None, None)
    ua = conn.headers.get("user-agent")
    return AuditContext(
        actor=principal.actor,
        tenant_id=principal.tenant_id,
        source_ip=(client.host[:45] if client and client.host else None),
        source_port=(client.port if client and isinstance(client.port, int) else None),
        dest_ip=(str(server[0])[:45] if server[0] else None),
        dest_port=(server[1] if isinstance(server[1], int) else None),
        user_agent=ua[:500] if ua else None,
    )
