"""Assessment runs and rectification items (issue 6): what a run measured, and the hazards it found
with an owner, severity, due date and status until fixed."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxwarden.store.columns import as_utc, utcnow
from voxwarden.store.errors import ConflictError, InvalidInputError
from voxwarden.store.models import (
    RECTIFICATION_STATUSES,
    RUN_STATUSES,
    SEVERITIES,
    AssessmentRun,
    AuditLog,
    Evidence,
    RectificationItem,
)
from voxwarden.store.repo import check_choice, check_text, get_scoped, normalise_json

CLOSED_ITEM_STATUSES = ("done", "accepted_risk")


def start_run(
    session: Session, tenant_id: str, framework: str, *, now: datetime | None = None
) -> AssessmentRun:
    """Begin a run against a framework (e.g. 'cac-2018', 'eu-ai-act-50')."""
    check_text(framework, 100, "framework", required=True)
    run = AssessmentRun(tenant_id=tenant_id, framework=framework, started_at=as_utc(now) if now else utcnow())
    session.add(run)
    session.flush()
    return run


def finish_run(
    session: Session,
    tenant_id: str,
    run_id: str,
    figures: dict[str, Any],
    *,
    status: str = "done",
    report_path: str | None = None,
    report_sha256: str | None = None,
    now: datetime | None = None,
) -> AssessmentRun:
    """Store a run's figures and report location; a finished run cannot be finished again."""
    run = get_scoped(session, AssessmentRun, tenant_id, run_id)
    if run.status != "running":
        raise ConflictError(f"assessment run {run_id} is already {run.status}")
    check_choice(status, RUN_STATUSES[1:], "run status")
    check_text(report_path, 1000, "report_path")
    if report_sha256 is not None and (
        len(report_sha256) != 64 or not set(report_sha256) <= set("0123456789abcdef")
    ):
        raise InvalidInputError("report_sha256 must be 64 lowercase hex characters")
    run.figures = normalise_json(figures, "figures")
    run.status, run.report_path, run.report_sha256 = status, report_path, report_sha256
    run.finished_at = as_utc(now) if now else utcnow()
    return run


def get_run(session: Session, tenant_id: str, run_id: str) -> AssessmentRun:
    return get_scoped(session, AssessmentRun, tenant_id, run_id)


def list_runs(session: Session, tenant_id: str, *, limit: int = 100) -> list[AssessmentRun]:
    q = select(AssessmentRun).where(AssessmentRun.tenant_id == tenant_id)
    return list(session.scalars(q.order_by(AssessmentRun.started_at.desc()).limit(limit)))


def add_item(
    session: Session,
    tenant_id: str,
    *,
    finding: str,
    title: str,
    severity: str,
    owner: str | None = None,
    due_date: date | None = None,
    run_id: str | None = None,
    evidence_id: str | None = None,
    notes: str | None = None,
    now: datetime | None = None,
) -> RectificationItem:
    """Record a hazard to rectify, optionally tied to the run that found it and supporting evidence."""
    check_text(finding, 200, "finding", required=True)
    check_text(title, 500, "title", required=True)
    check_choice(severity, SEVERITIES, "severity")
    check_text(owner, 200, "owner")
    check_text(notes, 100_000, "notes")
    if due_date is not None and (isinstance(due_date, datetime) or not isinstance(due_date, date)):
        raise InvalidInputError("due_date must be a date")
    if run_id is not None:
        get_run(session, tenant_id, run_id)
    if evidence_id is not None:
        get_scoped(session, Evidence, tenant_id, evidence_id)
    t = as_utc(now) if now else utcnow()
    item = RectificationItem(
        tenant_id=tenant_id,
        finding=finding,
        title=title,
        severity=severity,
        owner=owner,
        due_date=due_date,
        run_id=run_id,
        evidence_id=evidence_id,
        notes=notes,
        created_at=t,
        updated_at=t,
    )
    session.add(item)
    session.flush()
    return item


def update_item(
    session: Session,
    tenant_id: str,
    item_id: str,
    *,
    status: str | None = None,
    owner: str | None = None,
    due_date: date | None = None,
    notes: str | None = None,
    now: datetime | None = None,
) -> RectificationItem:
    """Change status/owner/due date/notes; closing (done, accepted_risk) stamps `closed_at`."""
    item = get_scoped(session, RectificationItem, tenant_id, item_id)
    t = as_utc(now) if now else utcnow()
    if status is not None:
        item.status = check_choice(status, RECTIFICATION_STATUSES, "rectification status")
        item.closed_at = t if status in CLOSED_ITEM_STATUSES else None
    if owner is not None:
        item.owner = check_text(owner, 200, "owner")
    if due_date is not None:
        item.due_date = due_date
    if notes is not None:
        item.notes = check_text(notes, 100_000, "notes")
    item.updated_at = t
    return item


def list_items(
    session: Session, tenant_id: str, *, status: str | None = None, run_id: str | None = None
) -> list[RectificationItem]:
    """Items by due date (undated last), then creation."""
    q = select(RectificationItem).where(RectificationItem.tenant_id == tenant_id)
    if status is not None:
        q = q.where(RectificationItem.status == check_choice(status, RECTIFICATION_STATUSES, "status"))
    if run_id is not None:
        q = q.where(RectificationItem.run_id == run_id)
    q = q.order_by(
        RectificationItem.due_date.is_(None), RectificationItem.due_date, RectificationItem.created_at
    )
    return list(session.scalars(q))


def items_for_findings(
    session: Session, tenant_id: str, findings: list[str], *, lock: bool = False
) -> list[RectificationItem]:
    """Every item (any run, any status) of the tenant for these findings, oldest first; `lock` takes row
    locks on PostgreSQL so two re-assessments cannot close or reopen the same item at once."""
    out: list[RectificationItem] = []
    uniq = sorted(set(findings))
    for i in range(0, len(uniq), 500):
        q = select(RectificationItem).where(RectificationItem.tenant_id == tenant_id,
                                            RectificationItem.finding.in_(uniq[i:i + 500]))
        if lock and session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update()
        out += list(session.scalars(q.order_by(RectificationItem.created_at, RectificationItem.id)))
    return out


def last_finished_run(
    session: Session, tenant_id: str, framework: str, *, before: str | None = None
) -> AssessmentRun | None:
    """The tenant's newest finished ('done') run of this framework, other than `before`."""
    q = select(AssessmentRun).where(AssessmentRun.tenant_id == tenant_id, AssessmentRun.framework == framework,
                                    AssessmentRun.status == "done")
    if before is not None:
        q = q.where(AssessmentRun.id != before)
    return session.scalars(q.order_by(AssessmentRun.finished_at.desc(), AssessmentRun.started_at.desc())
                           .limit(1)).first()


def item_history(session: Session, tenant_id: str, item_id: str) -> list[AuditLog]:
    """The audit entries about one item (create, update, close, reopen), oldest first: its status history."""
    get_scoped(session, RectificationItem, tenant_id, item_id)
    q = select(AuditLog).where(AuditLog.tenant_id == tenant_id, AuditLog.target_type == "rectification_item",
                               AuditLog.target_id == item_id)
    return list(session.scalars(q.order_by(AuditLog.seq)))


def overdue_items(session: Session, tenant_id: str, today: date) -> list[RectificationItem]:
    """Open items whose due date has passed."""
    q = select(RectificationItem).where(
        RectificationItem.tenant_id == tenant_id,
        RectificationItem.status.not_in(CLOSED_ITEM_STATUSES),
        RectificationItem.due_date < today,
    )
    return list(session.scalars(q.order_by(RectificationItem.due_date)))
