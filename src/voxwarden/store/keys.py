"""Tenants, API keys (hashed secrets, scopes) and users (roles, scrypt password hashes).

An API key looks like `vw_<prefix>_<secret>`; the prefix finds the row, only sha256(secret) is stored
(the secret has 256 random bits, so a fast hash is enough). Passwords are low-entropy, so they get
`hashlib.scrypt` with a random salt; the parameters travel in the stored string so they can be raised
later without breaking old hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import AuthError, ConflictError, InvalidInputError, NotFoundError
from voxwarden.store.models import API_SCOPES, USER_ROLES, ApiKey, ConsoleRevocation, Tenant, User
from voxwarden.store.repo import check_choice, check_text, get_scoped

_TOKEN = re.compile(r"^vw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32
MIN_PASSWORD, MAX_PASSWORD = 10, 1024


# -- tenants -------------------------------------------------------------------------------------


def create_tenant(session: Session, name: str, *, retention_days: int | None = None) -> Tenant:
    """A new tenant; names are unique (`ConflictError` if taken)."""
    check_text(name, 200, "tenant name", required=True)
    if retention_days is not None:
        from voxwarden.store.retention import RetentionPolicy

        RetentionPolicy(days=retention_days)  # refuses < 6 months; forced overrides go via purge()
    t = Tenant(name=name, retention_days=retention_days)
    try:
        with session.begin_nested():
            session.add(t)
            session.flush()
    except IntegrityError as e:
        raise ConflictError(f"tenant {name!r} exists") from e
    return t


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    t = session.get(Tenant, tenant_id)
    if t is None:
        raise NotFoundError(f"tenant {tenant_id!r} not found")
    return t


def tenant_by_name(session: Session, name: str) -> Tenant | None:
    return session.scalars(select(Tenant).where(Tenant.name == name)).first()


# -- API keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewApiKey:
    """A freshly made key: `token` is shown once to its owner and never stored."""

    key: ApiKey
    token: str


def _scopes(scopes: list[str] | tuple[str, ...] | set[str]) -> str:
    if isinstance(scopes, str) or not scopes:
        raise InvalidInputError(f"scopes must be a non-empty list of {', '.join(API_SCOPES)}")
    for s in scopes:
        check_choice(s, API_SCOPES, "scope")
    return " ".join(sorted(set(scopes)))


def _sha256(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def create_api_key(
    session: Session,
    tenant_id: str,
    name: str,
    scopes: list[str] | tuple[str, ...] | set[str],
    *,
    expires_at: datetime | None = None,
) -> NewApiKey:
    """Make a key for the tenant with the given scopes (scan, mark, rooms, admin)."""
    get_tenant(session, tenant_id)
    check_text(name, 200, "key name", required=True)
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=prefix,
        secret_hash=_sha256(secret),
        scopes=_scopes(scopes),
        expires_at=as_utc(expires_at) if expires_at else None,
    )
    session.add(key)
    session.flush()
    return NewApiKey(key, f"vw_{prefix}_{secret}")


def key_scopes(key: ApiKey) -> frozenset[str]:
    return frozenset(key.scopes.split())


def authenticate_key(
    session: Session, token: str, *, scope: str | None = None, now: datetime | None = None
) -> ApiKey:
    """The live key for `token` (with `scope`, or admin); `AuthError` for anything else."""
    now = as_utc(now) if now else utcnow()
    m = _TOKEN.match(token or "") if isinstance(token, str) else None
    if m is None:
        raise AuthError("invalid API key")
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == m.group(1))).first()
    expected = key.secret_hash if key else _sha256("timing-equaliser")
    if not hmac.compare_digest(expected, _sha256(m.group(2))) or key is None:
        raise AuthError("invalid API key")
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise AuthError("invalid API key")
    if scope is not None:
        check_choice(scope, API_SCOPES, "scope")
        granted = key_scopes(key)
        if scope not in granted and "admin" not in granted:
            raise AuthError(f"API key lacks the {scope!r} scope")
    key.last_used_at = now
    return key


def revoke_api_key(session: Session, tenant_id: str, key_id: str, *, now: datetime | None = None) -> ApiKey:
    """Revoke a key (idempotent: revoking twice keeps the first time)."""
    key = get_scoped(session, ApiKey, tenant_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = as_utc(now) if now else utcnow()
    return key


def list_api_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    return list(
        session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at))
    )


# -- passwords and users -------------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) using hashlib.scrypt with a 16-byte random salt."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInputError(f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches the stored scrypt hash; False for malformed hashes."""
    try:
        algo, n, r, p, salt, dk = stored.split("$")
        if algo != "scrypt":
            return False
        n_, r_, p_ = int(n), int(r), int(p)
        if not (2 <= n_ <= 2**20 and 1 <= r_ <= 32 and 1 <= p_ <= 16):
            return False
        want = base64.b64decode(dk, validate=True)
        got = hashlib.scrypt(
            password.encode("utf-8")[: MAX_PASSWORD * 4],
            salt=base64.b64decode(salt, validate=True),
            n=n_,
            r=r_,
            p=p_,
            dklen=len(want),
            maxmem=2**31 - 1,
        )
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(got, want)


_DUMMY_HASH: str | None = None


def create_user(session: Session, tenant_id: str, username: str, password: str, role: str) -> User:
    """A reviewer, admin or auditor of the tenant (`ConflictError` if the name is taken)."""
    get_tenant(session, tenant_id)
    check_text(username, 200, "username", required=True)
    check_choice(role, USER_ROLES, "role")
    u = User(tenant_id=tenant_id, username=username, role=role, password_hash=hash_password(password))
    try:
        with session.begin_nested():
            session.add(u)
            session.flush()
    except IntegrityError as e:
        raise ConflictError(f"user {username!r} exists") from e
    return u


def authenticate_user(session: Session, tenant_id: str, username: str, password: str) -> User:
    """The enabled user with this password; `AuthError` otherwise (same work whether or not they exist)."""
    global _DUMMY_HASH
    u = session.scalars(select(User).where(User.tenant_id == tenant_id, User.username == username)).first()
    if u is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password("x" * MIN_PASSWORD)
        verify_password(password if isinstance(password, str) else "", _DUMMY_HASH)
        raise AuthError("wrong username or password")
    if not isinstance(password, str) or not verify_password(password, u.password_hash):
        raise AuthError("wrong username or password")
    if u.disabled_at is not None:
        raise AuthError("wrong username or password")
    return u


def set_password(session: Session, tenant_id: str, user_id: str, password: str) -> User:
    u = get_scoped(session, User, tenant_id, user_id)
    u.password_hash = hash_password(password)
    return u


def set_role(session: Session, tenant_id: str, user_id: str, role: str) -> User:
    u = get_scoped(session, User, tenant_id, user_id)
    u.role = check_choice(role, USER_ROLES, "role")
    return u


def disable_user(session: Session, tenant_id: str, user_id: str, *, now: datetime | None = None) -> User:
    u = get_scoped(session, User, tenant_id, user_id)
    if u.disabled_at is None:
        u.disabled_at = as_utc(now) if now else utcnow()
    return u


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(("voxwarden-console-sid:" + sid).encode("utf-8")).hexdigest()


def revoke_console_session(session: Session, tenant_id: str, sid: str, expires_at: datetime) -> None:
    """Record a console logout so every process sharing the store refuses the session (idempotent)."""
    if not sid:
        raise InvalidInputError("session id is empty")
    key = _sid_hash(sid)
    if session.get(ConsoleRevocation, key) is None:
        try:
            with session.begin_nested():
                session.add(ConsoleRevocation(sid_hash=key, tenant_id=tenant_id, expires_at=as_utc(expires_at)))
                session.flush()
        except IntegrityError:  # a concurrent logout of the same session got there first
            pass


def console_session_revoked(session: Session, sid: str) -> bool:
    """Whether this console session id was logged out (one primary-key lookup)."""
    return session.get(ConsoleRevocation, _sid_hash(sid)) is not None
