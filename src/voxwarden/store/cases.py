"""Review cases: a reviewer groups alerts (or a scan), writes notes and reaches a verdict.

An open case holds its alerts, scan and evidence: retention never purges them while it is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import ConflictError
from voxwarden.store.models import CASE_STATUSES, CASE_VERDICTS, Alert, Case, CaseNote, User
from voxwarden.store.repo import check_choice, check_text, get_scoped
from voxwarden.store.scans import get_scan

# What closing a case with a verdict does to its alerts.
_ALERT_STATUS_FOR = {
    "confirmed_synthetic": "resolved",
    "false_positive": "dismissed",
    "escalated": "acknowledged",
}


def open_case(
    session: Session,
    tenant_id: str,
    title: str,
    *,
    opened_by: str,
    alert_ids: Iterable[str] = (),
    scan_id: str | None = None,
    assignee_id: str | None = None,
    now: datetime | None = None,
) -> Case:
    """Open a case on some alerts and/or a scan."""
    check_text(title, 500, "title", required=True)
    check_text(opened_by, 200, "opened_by", required=True)
    if scan_id is not None:
        get_scan(session, tenant_id, scan_id)
    if assignee_id is not None:
        get_scoped(session, User, tenant_id, assignee_id)
    alert_ids = list(alert_ids)
    for aid in alert_ids:  # all-or-nothing: check before writing anything
        get_scoped(session, Alert, tenant_id, aid)
    c = Case(
        tenant_id=tenant_id,
        title=title,
        opened_by=opened_by,
        scan_id=scan_id,
        assignee_id=assignee_id,
        opened_at=as_utc(now) if now else utcnow(),
    )
    session.add(c)
    session.flush()
    attach_alerts(session, tenant_id, c.id, alert_ids)
    return c


def get_case(session: Session, tenant_id: str, case_id: str) -> Case:
    return get_scoped(session, Case, tenant_id, case_id)


def attach_alerts(session: Session, tenant_id: str, case_id: str, alert_ids: Iterable[str]) -> list[Alert]:
    """Put alerts into a case; an alert already in another *open* case is a `ConflictError`."""
    c = get_case(session, tenant_id, case_id)
    out = []
    for aid in alert_ids:
        a = get_scoped(session, Alert, tenant_id, aid)
        if a.case_id not in (None, c.id):
            other = session.get(Case, a.case_id)
            if other is not None and other.status == "open":
                raise ConflictError(f"alert {aid} is already in open case {other.id}")
        a.case_id = c.id
        if a.status == "open":
            a.status = "acknowledged"
        out.append(a)
    session.flush()
    return out


def add_note(
    session: Session, tenant_id: str, case_id: str, author: str, body: str, *, now: datetime | None = None
) -> CaseNote:
    """Append a reviewer note."""
    get_case(session, tenant_id, case_id)
    check_text(author, 200, "author", required=True)
    check_text(body, 100_000, "note", required=True)
    n = CaseNote(
        tenant_id=tenant_id,
        case_id=case_id,
        author=author,
        body=body,
        created_at=as_utc(now) if now else utcnow(),
    )
    session.add(n)
    session.flush()
    return n


def notes(session: Session, tenant_id: str, case_id: str) -> list[CaseNote]:
    q = select(CaseNote).where(CaseNote.tenant_id == tenant_id, CaseNote.case_id == case_id)
    return list(session.scalars(q.order_by(CaseNote.created_at, CaseNote.id)))


def set_verdict(session: Session, tenant_id: str, case_id: str, verdict: str) -> Case:
    """Record a verdict without closing (e.g. `escalated` while others look at it)."""
    c = get_case(session, tenant_id, case_id)
    c.verdict = check_choice(verdict, CASE_VERDICTS, "verdict")
    return c


def close_case(
    session: Session, tenant_id: str, case_id: str, verdict: str, *, now: datetime | None = None
) -> Case:
    """Close with a verdict; its alerts become resolved (synthetic), dismissed (false positive) or stay
    acknowledged (escalated). Closing again with the same verdict is a no-op."""
    c = get_case(session, tenant_id, case_id)
    check_choice(verdict, CASE_VERDICTS, "verdict")
    if c.status == "closed":
        if c.verdict == verdict:
            return c
        raise ConflictError(f"case {case_id} is already closed as {c.verdict}; reopen it first")
    c.status, c.verdict, c.closed_at = "closed", verdict, as_utc(now) if now else utcnow()
    for a in session.scalars(select(Alert).where(Alert.tenant_id == tenant_id, Alert.case_id == c.id)):
        a.status = _ALERT_STATUS_FOR[verdict]
        a.updated_at = c.closed_at
    session.flush()
    return c


def reopen_case(session: Session, tenant_id: str, case_id: str) -> Case:
    """Open a closed case again (its verdict stays until a new one is set)."""
    c = get_case(session, tenant_id, case_id)
    c.status, c.closed_at = "open", None
    return c


def list_cases(
    session: Session, tenant_id: str, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[Case]:
    """Newest first."""
    q = select(Case).where(Case.tenant_id == tenant_id)
    if status is not None:
        q = q.where(Case.status == check_choice(status, CASE_STATUSES, "case status"))
    q = q.order_by(Case.opened_at.desc(), Case.id).limit(max(1, min(limit, 10_000))).offset(max(0, offset))
    return list(session.scalars(q))
