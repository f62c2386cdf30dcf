"""The review console's pages and the few endpoints they use, under ``/console``.

Pages are server-rendered (Jinja2) HTML forms that work without JavaScript. Every POST carries the
session-bound CSRF token and is refused (403) without it; auditors are refused (403) on every write.
Store errors become HTML error pages with the status the JSON API would give (404 for another tenant's
ids). Every change, login, logout, lockout, refusal, export and evidence playback is audit-logged.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from voxwarden.api.auth import audit_context
from voxwarden.api.console.chart import render_timeline
from voxwarden.api.console.export import collect_export, stream_zip
from voxwarden.api.console.queries import (
    ALERT_SEVERITIES,
    AlertFilter,
    FilterError,
    alert_queue,
    alert_view,
    queue_choices,
)
from voxwarden.api.console.security import (
    ACTION_LOGIN,
    ACTION_LOGIN_FAILED,
    ConsoleUser,
    LoginGuard,
    SessionData,
    SessionSigner,
)
from voxwarden.api.errors import store_status
from voxwarden.store import StoreError, audit, keys
from voxwarden.store import alerts as alert_repo
from voxwarden.store import assessments as rect_repo
from voxwarden.store import cases as case_repo
from voxwarden.store.errors import AuthError
from voxwarden.store.evidence import ref_of
from voxwarden.store.models import (
    ALERT_STATUSES,
    RECTIFICATION_STATUSES,
    SEVERITIES,
    USER_ROLES,
    Alert,
    Evidence,
    Tenant,
    User,
)
from voxwarden.store.repo import get_scoped

log = logging.getLogger("voxwarden.api.console")
router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

LOGIN_CSRF_COOKIE = "vw_login_csrf"
PER_PAGE = 25
VERIFY_AUDIO_MAX = 32 * 1024 * 1024  # evidence files up to this size are re-hashed before each playback
VERDICTS = {"confirmed_synthetic": "Confirmed synthetic", "false_positive": "False positive",
            "escalated": "Escalate"}
DONE_MESSAGES = {"verdict": "Verdict recorded.", "note": "Note added.", "updated": "Item updated.",
                 "created": "User created.", "disabled": "User disabled."}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "opus": "audio/ogg", "oga": "audio/ogg",
               "flac": "audio/flac", "m4a": "audio/mp4", "mp4": "audio/mp4", "aac": "audio/aac", "webm": "audio/webm"}


class ConsoleError(Exception):
    """An HTML (or, under /console/api, JSON) error with a status: the console's counterpart of `ApiError`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginRequired(Exception):
    """No valid session: a page redirects to the login form, anything else answers 401."""


@dataclass
class ConsoleState:
    """Per-app console machinery: cookie signer, login guard and cookie settings."""

    signer: SessionSigner
    guard: LoginGuard
    secure: bool
    cookie: str
    session_s: int


@dataclass(frozen=True)
class _Who:
    """An actor for the audit log before anyone is logged in."""

    actor: str
    tenant_id: str | None


def _state(request: Request) -> ConsoleState:
    return request.app.state.console


def _ctx(request: Request, who: ConsoleUser | _Who) -> Any:
    return audit_context(request, who)  # type: ignore[arg-type]  # needs only .actor and .tenant_id


@contextmanager
def tx(request: Request) -> Iterator[Session]:
    """One store transaction; store errors become console errors with the API's status codes."""
    try:
        with request.app.state.store.session() as s:
            yield s
    except StoreError as e:
        status = store_status(e)
        if status >= 500:
            log.error("console: store error: %s", e)
        raise ConsoleError(status, str(e) if status < 500 else "the store is unavailable; try again") from e


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**SECURITY_HEADERS, **(extra or {})}


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page with the console's security headers; `user` and `csrf` are filled in when logged in."""
    user: ConsoleUser | None = getattr(request.state, "console_user", None)
    ctx = {"user": user, "csrf": user.csrf if user else "", "done": DONE_MESSAGES.get(
        request.query_params.get("done", "")), **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status, headers=_headers())


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_headers())


# -- who is calling ------------------------------------------------------------------------------


def _session_user(request: Request) -> ConsoleUser | None:
    """The live session's user as the store has them now (role re-read; disabled → None)."""
    if hasattr(request.state, "console_user"):
        return request.state.console_user
    st = _state(request)
    data = st.signer.load(request.cookies.get(st.cookie))
    user = None
    if data is not None:
        with tx(request) as s:
            u = s.get(User, data.user_id)
            if (u is not None and u.tenant_id == data.tenant_id and u.disabled_at is None
                    and hmac.compare_digest(st.signer.password_fingerprint(u.password_hash), data.pw)
                    and not keys.console_session_revoked(s, data.sid)):
                t = s.get(Tenant, u.tenant_id)
                user = ConsoleUser(u.id, u.tenant_id, t.name if t else "", u.username, u.role, data.sid,
                                   st.signer.csrf_token(data.sid), data.expires)
    request.state.console_user = user
    return user


def page_user(request: Request) -> ConsoleUser:
    """Dependency: any logged-in user (reads)."""
    user = _session_user(request)
    if user is None:
        raise LoginRequired()
    return user


def _refuse(request: Request, user: ConsoleUser, reason: str, message: str) -> ConsoleError:
    """Audit a refused write and return the 403 to raise."""
    try:
        with tx(request) as s:
            audit.record(s, _ctx(request, user), "console.forbidden", target_type="path",
                         target_id=request.url.path[:200], details={"reason": reason, "role": user.role})
    except ConsoleError:
        pass  # the refusal stands even if the store is down
    return ConsoleError(403, message)


async def _checked_user(request: Request) -> tuple[ConsoleUser, FormData]:
    user = await run_in_threadpool(_session_user, request)
    if user is None:
        raise LoginRequired()
    form = await request.form()
    token = request.headers.get("x-csrf-token") or form.get("csrf_token")
    if not isinstance(token, str) or not _state(request).signer.check_csrf(user.sid, token):
        raise await run_in_threadpool(_refuse, request, user, "csrf",
                                      "missing or wrong CSRF token: reload the page and try again")
    return user, form


async def csrf_user(request: Request) -> ConsoleUser:
    """Dependency for POSTs any role may make (logout): a session and its CSRF token."""
    return (await _checked_user(request))[0]


async def writer(request: Request) -> ConsoleUser:
    """Dependency for changes: session, CSRF token and a reviewer or admin role (auditors are read-only)."""
    user, _ = await _checked_user(request)
    if not user.can_write:
        raise await run_in_threadpool(_refuse, request, user, "read_only_role",
                                      f"the {user.role} role is read-only")
    return user


async def admin_writer(request: Request) -> ConsoleUser:
    """Dependency for user management: session, CSRF token and the admin role."""
    user, _ = await _checked_user(request)
    if not user.is_admin:
        raise await run_in_threadpool(_refuse, request, user, "not_admin", "only admins manage users")
    return user


_ID = re.compile(r"^[0-9a-f]{32}$")


def _check_id(value: str, what: str) -> str:
    """Store ids are 32 hex digits; anything else is not found (and never reaches the database)."""
    if not _ID.match(value):
        raise ConsoleError(404, f"{what} {value[:40]!r} not found")
    return value


def _field(form: FormData, name: str, limit: int = 200, *, required: bool = False) -> str:
    v = form.get(name, "")
    if not isinstance(v, str):
        raise ConsoleError(422, f"{name} must be a text field")
    if "\x00" in v:
        raise ConsoleError(422, f"{name} must not contain NUL characters")
    v = v.strip()
    if len(v) > limit:
        raise ConsoleError(422, f"{name} is longer than {limit} characters")
    if required and not v:
        raise ConsoleError(422, f"{name} is required")
    return v


def _safe_next(value: str | None) -> str:
    """Only local console paths (no open redirect)."""
    if (value and value.startswith("/console/") and "//" not in value and "\\" not in value and len(value) < 1000
            and not value.startswith("/console/login")):
        return value
    return "/console/alerts"


# -- login / logout ------------------------------------------------------------------------------


@router.get("")
@router.get("/")
def index() -> RedirectResponse:
    return _redirect("/console/alerts")


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if _session_user(request) is not None:
        return _redirect(_safe_next(next))
    st = _state(request)
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) != 43:
        token = secrets.token_urlsafe(32)
    resp = render(request, "login.html", {"login_csrf": token, "next": _safe_next(next), "error": None})
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/console/login", secure=st.secure,
                    httponly=True, samesite="strict")
    return resp


def _login(request: Request, tenant_name: str, username: str, password: str) -> tuple[str | None, str, int]:
    """Check credentials with lockout; returns (cookie value or None, message, status)."""
    st = _state(request)
    addr = request.client.host if request.client else None  # proxy-aware (api/proxy.py), as in the audit log
    now = datetime.now(UTC)
    with tx(request) as s:
        if st.guard.address_blocked(s, addr, now):
            audit.record(s, _ctx(request, _Who(f"login:{username[:190]}", None)), "console.login_throttled",
                         target_type="address", target_id=(addr or "")[:200], details={"tenant": tenant_name})
            return None, "too many failed logins from your address: try again later", 429
    with tx(request) as s:
        tenant = keys.tenant_by_name(s, tenant_name)
        tid = tenant.id if tenant else None
        who = _Who(f"login:{username[:190]}", tid)
        if tid is not None:
            lock = st.guard.account_lockout(s, tid, username, now)
            if lock is not None:
                audit.record(s, _ctx(request, who), "console.login_locked", target_type="user",
                             target_id=username, details={"until": lock.until.isoformat()})
                return None, (f"too many failed logins: this account is locked until "
                              f"{lock.until.strftime('%H:%M')} UTC"), 429
        try:
            if tid is None:
                raise AuthError("unknown tenant")
            u = keys.authenticate_user(s, tid, username, password)
        except AuthError:
            audit.record(s, _ctx(request, who), ACTION_LOGIN_FAILED, target_type="user", target_id=username,
                         details={"tenant": tenant_name[:200]})
            return None, "wrong tenant, username or password", 401
        cookie, data = st.signer.issue(u)
        audit.record(s, _ctx(request, _Who(f"user:{u.username}", tid)), ACTION_LOGIN, target_type="user",
                     target_id=u.username, details={"role": u.role, "session": data.sid[:8],
                                                    "expires": datetime.fromtimestamp(data.expires, UTC).isoformat()})
        return cookie, "ok", 303


@router.post("/login")
async def login_submit(request: Request) -> Response:
    st = _state(request)
    form = await request.form()
    nxt = _safe_next(_field(form, "next", 1000))
    sent, kept = form.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE)
    if not isinstance(sent, str) or not kept or not hmac.compare_digest(sent, kept):
        raise ConsoleError(403, "the login form expired or was not sent from this site: reload it and try again")
    tenant, username = _field(form, "tenant"), _field(form, "username")
    password = form.get("password", "")
    if not isinstance(password, str) or len(password) > 1024:
        raise ConsoleError(422, "password must be text of at most 1024 characters")
    if not tenant or not username or not password:
        cookie, message, status = None, "tenant, username and password are required", 422
    else:
        cookie, message, status = await run_in_threadpool(_login, request, tenant, username, password)
    if cookie is None:
        request.state.console_user = None
        resp = render(request, "login.html", {"login_csrf": kept, "next": nxt, "error": message,
                                              "tenant": tenant, "username": username}, status)
        return resp
    resp = _redirect(nxt)
    resp.set_cookie(st.cookie, cookie, max_age=st.session_s, path="/", secure=st.secure, httponly=True,
                    samesite="strict")
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login", secure=st.secure, httponly=True, samesite="strict")
    return resp


@router.post("/logout")
def logout(request: Request, user: ConsoleUser = Depends(csrf_user)) -> Response:
    st = _state(request)
    data = st.signer.load(request.cookies.get(st.cookie))
    if data is not None:
        st.signer.revoke(data)
    with tx(request) as s:
        if data is not None:  # in the store too: every worker and replica sharing it refuses the cookie
            keys.revoke_console_session(s, data.tenant_id, data.sid, datetime.fromtimestamp(data.expires, UTC))
        audit.record(s, _ctx(request, user), "console.logout", target_type="user", target_id=user.username,
                     details={"session": user.sid[:8]})
    resp = _redirect("/console/login")
    resp.delete_cookie(st.cookie, path="/", secure=st.secure, httponly=True, samesite="strict")
    return resp


# -- alert queue and detail ----------------------------------------------------------------------


@router.get("/alerts")
def alerts_page(request: Request, user: ConsoleUser = Depends(page_user)) -> Response:
    params = {k: v for k, v in request.query_params.items()}
    error = None
    try:
        f = AlertFilter.parse(params)
    except FilterError as e:
        f, error = AlertFilter(), str(e)
    try:
        page = int(params.get("page") or 1)
    except ValueError:
        page, error = 1, error or "page must be a whole number"
    with tx(request) as s:
        result = alert_queue(s, user.tenant_id, f, page=page, per_page=PER_PAGE) if error is None else None
        choices = queue_choices(s, user.tenant_id)
    qs = f.as_params()

    def page_link(n: int) -> str:
        return "/console/alerts?" + urlencode({**qs, "page": n})

    return render(request, "alerts.html", {
        "result": result, "filters": qs, "error": error, "choices": choices, "statuses": ALERT_STATUSES,
        "severities": ALERT_SEVERITIES, "page_link": page_link, "nav": "alerts",
    }, 422 if error else 200)


@router.get("/alerts/{alert_id}")
def alert_page(alert_id: str, request: Request, user: ConsoleUser = Depends(page_user)) -> Response:
    _check_id(alert_id, "alert")
    with tx(request) as s:
        view = alert_view(s, user.tenant_id, alert_id)
    return render(request, "alert.html", {"v": view, "svg": Markup(render_timeline(view.timeline)),
                                          "verdicts": VERDICTS, "nav": "alerts"})


@router.get("/api/alerts/{alert_id}/timeline")
def alert_timeline_json(alert_id: str, request: Request, user: ConsoleUser = Depends(page_user)) -> JSONResponse:
    """The per-speaker curves of the alert page as JSON (seconds since t0, probability)."""
    _check_id(alert_id, "alert")
    with tx(request) as s:
        view = alert_view(s, user.tenant_id, alert_id)
    return JSONResponse(view.timeline.to_dict(), headers=_headers())


def _case_for(s: Session, user: ConsoleUser, request: Request, a: Alert) -> Any:
    """The alert's case, opened (and audited) on first need."""
    if a.case_id is not None:
        return case_repo.get_case(s, user.tenant_id, a.case_id)
    c = case_repo.open_case(s, user.tenant_id, f"{a.rule} on {a.speaker}"[:500], opened_by=user.actor,
                            alert_ids=[a.id])
    audit.record(s, _ctx(request, user), "case.open", target_type="case", target_id=c.id,
                 details={"alert_id": a.id})
    return c


@router.post("/alerts/{alert_id}/verdict")
async def alert_verdict(alert_id: str, request: Request, user: ConsoleUser = Depends(writer)) -> Response:
    _check_id(alert_id, "alert")
    verdict = _field(await request.form(), "verdict", 40, required=True)
    if verdict not in VERDICTS:
        raise ConsoleError(422, f"verdict must be one of {', '.join(VERDICTS)}")

    def go() -> None:
        with tx(request) as s:
            a = alert_repo.get_alert(s, user.tenant_id, alert_id)
            before = {"alert_status": a.status}
            c = _case_for(s, user, request, a)
            before.update(case_status=c.status, case_verdict=c.verdict)
            if c.status == "closed" and c.verdict != verdict:
                case_repo.reopen_case(s, user.tenant_id, c.id)
            if verdict == "escalated":
                case_repo.set_verdict(s, user.tenant_id, c.id, verdict)
                for other in s.scalars(select(Alert).where(Alert.tenant_id == user.tenant_id, Alert.case_id == c.id)):
                    alert_repo.set_status(s, user.tenant_id, other.id, "acknowledged")
            else:
                case_repo.close_case(s, user.tenant_id, c.id, verdict)
            audit.record(s, _ctx(request, user), "alert.verdict", target_type="alert", target_id=a.id,
                         details={"verdict": verdict, "case_id": c.id, "before": before,
                                  "alert_status": a.status, "case_status": c.status})

    await run_in_threadpool(go)
    return _redirect(f"/console/alerts/{alert_id}?done=verdict")


@router.post("/alerts/{alert_id}/notes")
async def alert_note(alert_id: str, request: Request, user: ConsoleUser = Depends(writer)) -> Response:
    _check_id(alert_id, "alert")
    body = _field(await request.form(), "body", 20_000, required=True)

    def go() -> None:
        with tx(request) as s:
            a = alert_repo.get_alert(s, user.tenant_id, alert_id)
            c = _case_for(s, user, request, a)
            n = case_repo.add_note(s, user.tenant_id, c.id, user.username, body)
            audit.record(s, _ctx(request, user), "case.note", target_type="case", target_id=c.id,
                         details={"alert_id": a.id, "note_id": n.id, "chars": len(body)})

    await run_in_threadpool(go)
    return _redirect(f"/console/alerts/{alert_id}?done=note#notes")


@router.get("/alerts/{alert_id}/export.zip")
def alert_export(alert_id: str, request: Request, user: ConsoleUser = Depends(page_user)) -> Response:
    """The alert's evidence bundle as a zip, streamed (the export is audited first, so it is in the zip)."""
    _check_id(alert_id, "alert")
    with tx(request) as s:
        alert_repo.get_alert(s, user.tenant_id, alert_id)  # 404 before anything is written
        audit.record(s, _ctx(request, user), "alert.export", target_type="alert", target_id=alert_id,
                     details={"format": "zip"})
    with tx(request) as s:
        bundle = collect_export(s, request.app.state.store.evidence, user.tenant_id, alert_id, user.actor)
    return StreamingResponse(stream_zip(bundle), media_type="application/zip", headers=_headers({
        "Content-Disposition": f'attachment; filename="{bundle.filename}"'}))


@router.get("/evidence/{evidence_id}")
def evidence_audio(evidence_id: str, request: Request, user: ConsoleUser = Depends(page_user)) -> Response:
    """An evidence file with its audio content type (Range requests supported), tenant-scoped."""
    _check_id(evidence_id, "evidence")
    rng = request.headers.get("range")
    first = rng is None or rng.replace(" ", "").startswith("bytes=0-")
    store = request.app.state.store
    with tx(request) as s:
        row = get_scoped(s, Evidence, user.tenant_id, evidence_id)
        ref = ref_of(row)
        if first:  # one audit entry per playback, not one per range request
            audit.record(s, _ctx(request, user), "evidence.play", target_type="evidence", target_id=row.id,
                         details={"sha256": row.sha256, "alert_id": row.alert_id})
        media = row.media_type
    path = store.evidence.abspath(ref)
    if not path.is_file():
        raise ConsoleError(404, f"evidence file {ref.sha256} is missing from the evidence store")
    if first and ref.size <= VERIFY_AUDIO_MAX and not store.evidence.verify(ref):
        raise ConsoleError(409, f"evidence file {ref.sha256} does not match its recorded hash (altered or corrupt)")
    if not media or not media.startswith("audio/"):
        media = AUDIO_TYPES.get(ref.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers={
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'", "X-Evidence-SHA256": ref.sha256})


# -- rectification (issue 6) ---------------------------------------------------------------------


@router.get("/rectification")
def rectification_page(request: Request, user: ConsoleUser = Depends(page_user)) -> Response:
    status = request.query_params.get("status") or None
    severity = request.query_params.get("severity") or None
    error = None
    if status is not None and status not in RECTIFICATION_STATUSES:
        error, status = f"status must be one of {', '.join(RECTIFICATION_STATUSES)}", None
    if severity is not None and severity not in SEVERITIES:
        error, severity = f"severity must be one of {', '.join(SEVERITIES)}", None
    today = datetime.now(UTC).date()
    with tx(request) as s:
        items = rect_repo.list_items(s, user.tenant_id, status=status)
    if severity:
        items = [i for i in items if i.severity == severity]
    return render(request, "rectification.html", {
        "items": items, "statuses": RECTIFICATION_STATUSES, "severities": SEVERITIES, "error": error,
        "filters": {"status": status or "", "severity": severity or ""}, "today": today,
        "closed": rect_repo.CLOSED_ITEM_STATUSES, "nav": "rectification",
    }, 422 if error else 200)


@router.post("/rectification/{item_id}")
async def rectification_update(item_id: str, request: Request, user: ConsoleUser = Depends(writer)) -> Response:
    _check_id(item_id, "rectification item")
    form = await request.form()
    status = _field(form, "status", 20) or None
    owner = _field(form, "owner", 200)
    due_raw = _field(form, "due_date", 10)
    note = _field(form, "note", 20_000)
    if status is not None and status not in RECTIFICATION_STATUSES:
        raise ConsoleError(422, f"status must be one of {', '.join(RECTIFICATION_STATUSES)}")
    try:
        due = date.fromisoformat(due_raw) if due_raw else None
    except ValueError as e:
        raise ConsoleError(422, f"due date must be YYYY-MM-DD, got {due_raw!r}") from e

    def go() -> None:
        from voxwarden.store.models import RectificationItem

        with tx(request) as s:
            item = get_scoped(s, RectificationItem, user.tenant_id, item_id)
            changes: dict[str, Any] = {}
            if status is not None and status != item.status:
                changes["status"] = [item.status, status]
            if owner and owner != (item.owner or ""):
                changes["owner"] = [item.owner, owner]
            if due is not None and due != item.due_date:
                changes["due_date"] = [item.due_date.isoformat() if item.due_date else None, due.isoformat()]
            notes = None
            if note:
                now = datetime.now(UTC)
                line = f"[{now.strftime('%Y-%m-%d %H:%M')}Z {user.actor}] {note}"
                notes = f"{item.notes}\n{line}" if item.notes else line
                changes["note"] = len(note)
            if not changes:
                return
            rect_repo.update_item(s, user.tenant_id, item_id, status=status if "status" in changes else None,
                                  owner=owner if "owner" in changes else None, due_date=due, notes=notes)
            action = "rectification.close" if status in rect_repo.CLOSED_ITEM_STATUSES and "status" in changes \
                else "rectification.update"
            audit.record(s, _ctx(request, user), action, target_type="rectification_item", target_id=item_id,
                         details={"changes": changes, "finding": item.finding})

    await run_in_threadpool(go)
    return _redirect(f"/console/rectification?done=updated#item-{item_id}")


# -- users (admins) ------------------------------------------------------------------------------


@router.get("/admin/users")
def users_page(request: Request, user: ConsoleUser = Depends(page_user)) -> Response:
    if not user.is_admin:
        raise ConsoleError(403, "only admins manage users")
    with tx(request) as s:
        users = list(s.scalars(select(User).where(User.tenant_id == user.tenant_id).order_by(User.username)))
    return render(request, "users.html", {"users": users, "roles": USER_ROLES, "nav": "users"})


@router.post("/admin/users")
async def users_create(request: Request, user: ConsoleUser = Depends(admin_writer)) -> Response:
    form = await request.form()
    username = _field(form, "username", 200, required=True)
    role = _field(form, "role", 20, required=True)
    password = form.get("password", "")
    if role not in USER_ROLES:
        raise ConsoleError(422, f"role must be one of {', '.join(USER_ROLES)}")
    if not isinstance(password, str):
        raise ConsoleError(422, "password must be text")

    def go() -> None:
        with tx(request) as s:
            u = keys.create_user(s, user.tenant_id, username, password, role)
            audit.record(s, _ctx(request, user), "user.create", target_type="user", target_id=u.username,
                         details={"role": role, "user_id": u.id})

    await run_in_threadpool(go)
    return _redirect("/console/admin/users?done=created")


@router.post("/admin/users/{user_id}/disable")
async def users_disable(user_id: str, request: Request, user: ConsoleUser = Depends(admin_writer)) -> Response:
    _check_id(user_id, "user")
    if user_id == user.id:
        raise ConsoleError(409, "you cannot disable your own account")

    def go() -> None:
        with tx(request) as s:
            u = keys.disable_user(s, user.tenant_id, user_id)
            audit.record(s, _ctx(request, user), "user.disable", target_type="user", target_id=u.username,
                         details={"user_id": u.id})

    await run_in_threadpool(go)
    return _redirect("/console/admin/users?done=disabled")


# -- error pages ---------------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/console/api/")


async def console_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    if _wants_json(request):
        return JSONResponse({"type": "console_error", "message": exc.message}, status_code=exc.status,
                            headers=_headers())
    if not hasattr(request.state, "console_user"):
        request.state.console_user = None
    return render(request, "error.html", {"status": exc.status, "message": exc.message}, exc.status)


async def login_required_handler(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and not _wants_json(request):
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _redirect("/console/login?" + urlencode({"next": _safe_next(nxt)}))
    msg = "log in first: your console session is missing or expired"
    if _wants_json(request):
        return JSONResponse({"type": "unauthorized", "message": msg}, status_code=401, headers=_headers())
    request.state.console_user = None
    return render(request, "error.html", {"status": 401, "message": msg}, 401)


__all__ = ["ConsoleError", "ConsoleState", "LoginRequired", "SessionData", "router"]
