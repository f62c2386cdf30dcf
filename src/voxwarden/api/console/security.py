"""Console sessions, CSRF tokens and login throttling.

Sessions are signed cookies: ``base64url(JSON payload) "." base64url(HMAC-SHA256)``, keyed by a secret
from the settings or generated once into ``data_dir/console-secret`` (0600). The payload names the user,
tenant, a random session id, issue and expiry times, and a fingerprint of the user's password hash, so a
password change ends every session of that user. The role is re-read from the store on every request:
disabling a user or changing a role takes effect at once. Logout revokes the session id in the store
(``console_revocations``, checked with the user on every request, so it holds on every worker and replica)
as well as in this process, and deletes the cookie.

CSRF tokens are bound to the session (``HMAC(secret, "csrf" + session id)``) and checked on every POST;
the login form, which has no session yet, uses a double-submit cookie.

Failed logins are audit-logged (``console.login_failed``); an account with ``max_failures`` of them within
the lockout window (since its last good login) is locked for the rest of the window. Counting them from the
audit log makes the lockout survive restarts and hold across processes. A per-address limit, counted from
the same log, slows guessing across many accounts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from voxwarden.store.models import AuditLog, User

SECRET_FILE = "console-secret"
ACTION_LOGIN = "console.login"
ACTION_LOGIN_FAILED = "console.login_failed"
WRITER_ROLES = ("reviewer", "admin")


class SecretError(RuntimeError):
    """The console secret file cannot be read or created."""


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else the one kept in ``data_dir/console-secret`` (created 0600 on first use)."""
    if configured:
        return configured.encode("utf-8")
    path = Path(data_dir) / SECRET_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SecretError(f"cannot read or create the console secret {path}: {e}") from e
    if len(value) < 32:
        raise SecretError(f"console secret {path} is shorter than 32 characters: delete it to make a new one")
    return value.encode("ascii")


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@dataclass(frozen=True)
class SessionData:
    """What a session cookie says: session id, user, tenant, issue/expiry (Unix s), password fingerprint."""

    sid: str
    user_id: str
    tenant_id: str
    issued: int
    expires: int
    pw: str


@dataclass(frozen=True)
class ConsoleUser:
    """The logged-in person of a request, as the store has them now."""

    id: str
    tenant_id: str
    tenant_name: str
    username: str
    role: str
    sid: str
    csrf: str
    expires: int

    @property
    def actor(self) -> str:
        """The audit log's account name for this person."""
        return f"user:{self.username}"

    @property
    def can_write(self) -> bool:
        return self.role in WRITER_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class SessionSigner:
    """Issues and checks signed session cookies and session-bound CSRF tokens."""

    def __init__(self, secret: bytes, max_age_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("console secret must have at least 32 bytes")
        self._k_session = hmac.new(secret, b"voxwarden-console-session", hashlib.sha256).digest()
        self._k_csrf = hmac.new(secret, b"voxwarden-console-csrf", hashlib.sha256).digest()
        self._k_pw = hmac.new(secret, b"voxwarden-console-password", hashlib.sha256).digest()
        self.max_age_s = max_age_s
        self._revoked: dict[str, int] = {}
        self._lock = threading.Lock()

    def password_fingerprint(self, password_hash: str) -> str:
        return hmac.new(self._k_pw, password_hash.encode("utf-8"), hashlib.sha256).hexdigest()[:24]

    def issue(self, user: User, now: float | None = None) -> tuple[str, SessionData]:
        """A new cookie value for `user` and what it holds."""
        t = int(now if now is not None else time.time())
        data = SessionData(secrets.token_urlsafe(18), user.id, user.tenant_id, t, t + self.max_age_s,
                           self.password_fingerprint(user.password_hash))
        body = _b64e(json.dumps({"s": data.sid, "u": data.user_id, "t": data.tenant_id, "i": data.issued,
                                 "e": data.expires, "p": data.pw}, separators=(",", ":")).encode("utf-8"))
        sig = _b64e(hmac.new(self._k_session, body.encode("ascii"), hashlib.sha256).digest())
        return f"{body}.{sig}", data

    def load(self, token: str | None, now: float | None = None) -> SessionData | None:
        """The session a cookie value holds, or None if it is malformed, forged, expired or logged out."""
        if not token or len(token) > 1000 or token.count(".") != 1:
            return None
        body, sig = token.split(".")
        want = _b64e(hmac.new(self._k_session, body.encode("ascii", "replace"), hashlib.sha256).digest())
        if not hmac.compare_digest(want, sig):
            return None
        try:
            d = json.loads(_b64d(body))
            data = SessionData(str(d["s"]), str(d["u"]), str(d["t"]), int(d["i"]), int(d["e"]), str(d["p"]))
        except (ValueError, KeyError, TypeError):
            return None
        t = now if now is not None else time.time()
        if data.expires <= t or data.issued > t + 300:
            return None
        with self._lock:
            if data.sid in self._revoked:
                return None
        return data

    def revoke(self, data: SessionData) -> None:
        """Log a session out in this process (kept until it would have expired anyway); the console also
        records it in the store (`keys.revoke_console_session`) for the other processes."""
        now = time.time()
        with self._lock:
            self._revoked[data.sid] = data.expires
            for sid in [k for k, exp in self._revoked.items() if exp <= now]:
                del self._revoked[sid]

    def csrf_token(self, sid: str) -> str:
        return _b64e(hmac.new(self._k_csrf, sid.encode("utf-8"), hashlib.sha256).digest())

    def check_csrf(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(sid), str(token))


@dataclass(frozen=True)
class Lockout:
    """An account is locked until `until` after `failures` failed logins in the window."""

    until: datetime
    failures: int


class LoginGuard:
    """Account lockout and a per-address limit on failed logins, both counted from the audit log."""

    def __init__(self, max_failures: int, window_s: int, per_address: int | None = None) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.per_address = per_address if per_address is not None else max(20, 4 * max_failures)

    def account_lockout(self, s: Session, tenant_id: str, username: str, now: datetime) -> Lockout | None:
        """Lockout of (tenant, username) now, from its failures since the later of the window start and the
        last good login; None when it may try."""
        since = now - timedelta(seconds=self.window_s)
        base = (AuditLog.tenant_id == tenant_id, AuditLog.target_type == "user", AuditLog.target_id == username)
        last_ok = s.scalar(select(func.max(AuditLog.at)).where(*base, AuditLog.action == ACTION_LOGIN,
                                                              AuditLog.at >= since))
        if last_ok is not None:
            since = max(since, _aware(last_ok))
        n, latest = s.execute(select(func.count(), func.max(AuditLog.at))
                              .where(*base, AuditLog.action == ACTION_LOGIN_FAILED, AuditLog.at >= since)).one()
        if n < self.max_failures or latest is None:
            return None
        until = _aware(latest) + timedelta(seconds=self.window_s)
        return Lockout(until, int(n)) if until > now else None

    def address_blocked(self, s: Session, addr: str | None, now: datetime) -> bool:
        """True when this client address has had `per_address` failed logins (any tenant, any account)
        within the window. Counted from the audit log like the account lockout, so it holds across
        processes and restarts; the address is the one the audit log records (proxy-aware)."""
        if not addr:
            return False
        since = now - timedelta(seconds=self.window_s)
        n = s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == ACTION_LOGIN_FAILED, AuditLog.at >= since, AuditLog.source_ip == addr[:45]))
        return int(n or 0) >= self.per_address


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
