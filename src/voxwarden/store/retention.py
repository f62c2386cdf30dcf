"""Retention: keep records at least six months (CAC 2018 log duty), then purge them.

`purge` deletes, per tenant, rows older than the retention period (a live session that never ended
counts from its last recorded window) and the evidence files no row references any more — but never
anything an open case holds (its alerts, scan, sessions, evidence), nor evidence an unfinished
rectification item points at. The audit log is never purged. Files are removed only after the
transaction commits (a rollback leaves every file in place); a crash between commit and unlink leaves
orphan files that `sweep_orphans` removes later. Each purge is itself recorded in the audit log.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Select, delete, event, func, select, union
from sqlalchemy.orm import Session

from voxwarden.store import audit
from voxwarden.store.columns import as_utc
from voxwarden.store.errors import RetentionError
from voxwarden.store.evidence import EvidenceRef, EvidenceStore
from voxwarden.store.models import (
    Alert,
    Case,
    ConsoleRevocation,
    Evidence,
    Job,
    RectificationItem,
    RoomSession,
    Scan,
    Tenant,
    WatermarkCheck,
    WebhookDelivery,
    WindowScore,
)

MIN_RETENTION_DAYS = 184  # the longest six calendar months (e.g. July-December)
DEFAULT_RETENTION_DAYS = MIN_RETENTION_DAYS


@dataclass(frozen=True)
class RetentionPolicy:
    """How long to keep records. Below six months only with `force=True` and a written `reason`."""

    days: int = DEFAULT_RETENTION_DAYS
    force: bool = False
    reason: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1:
            raise RetentionError(f"retention must be a positive number of days, got {self.days!r}")
        if self.days < MIN_RETENTION_DAYS and not (self.force and self.reason and self.reason.strip()):
            raise RetentionError(
                f"retention of {self.days} days is below the legal minimum of six months "
                f"({MIN_RETENTION_DAYS} days); pass force=True with a reason to override"
            )

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)


@dataclass
class PurgeReport:
    """What a purge removed and kept. File counts are final once the transaction has committed."""

    now: datetime
    cutoffs: dict[str, datetime] = field(default_factory=dict)  # tenant id -> cutoff used
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    kept_for_open_cases: dict[str, int] = field(default_factory=dict)  # expired rows kept (held)
    files_planned: int = 0  # files no row references after this purge
    files_deleted: int = 0
    bytes_freed: int = 0
    forced_reason: str | None = None
    committed: bool = False

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())


def _open_cases(tenant_id: str) -> Select:
    return select(Case.id).where(Case.tenant_id == tenant_id, Case.status == "open")


def _held_alerts(tenant_id: str) -> Select:
    return select(Alert.id).where(Alert.tenant_id == tenant_id, Alert.case_id.in_(_open_cases(tenant_id)))


def _held_scans(tenant_id: str) -> Select:
    return select(Case.scan_id).where(
        Case.tenant_id == tenant_id, Case.status == "open", Case.scan_id.is_not(None)
    )


def _held_sessions(tenant_id: str) -> Select:
    return select(Alert.session_id).where(
        Alert.tenant_id == tenant_id, Alert.case_id.in_(_open_cases(tenant_id)), Alert.session_id.is_not(None)
    )


def _held_evidence(tenant_id: str) -> Select:
    e = Evidence
    mine = e.tenant_id == tenant_id
    open_items = select(RectificationItem.evidence_id).where(
        RectificationItem.tenant_id == tenant_id,
        RectificationItem.status.not_in(("done", "accepted_risk")),
        RectificationItem.evidence_id.is_not(None),
    )
    return union(
        select(e.id).where(mine, e.case_id.in_(_open_cases(tenant_id))),
        select(e.id).where(mine, e.alert_id.in_(_held_alerts(tenant_id))),
        select(e.id).where(mine, e.scan_id.in_(_held_scans(tenant_id))),
        select(e.id).where(mine, e.id.in_(open_items)),
    )


def _count(session: Session, stmt: Select) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def purge(
    session: Session,
    now: datetime,
    evidence_store: EvidenceStore,
    *,
    policy: RetentionPolicy | None = None,
    ctx: audit.AuditContext | None = None,
) -> PurgeReport:
    """Delete expired records of every tenant inside the caller's transaction; see the module doc."""
    now = as_utc(now)
    policy = policy or RetentionPolicy()
    report = PurgeReport(now=now, forced_reason=policy.reason if policy.force else None)
    doomed_files: dict[str, EvidenceRef] = {}

    def gone(table: str, n: int | None) -> None:
        report.deleted[table] = report.deleted.get(table, 0) + int(n or 0)

    def kept(table: str, n: int) -> None:
        if n:
            report.kept_for_open_cases[table] = report.kept_for_open_cases.get(table, 0) + n

    nosync = {"synchronize_session": False}
    for tenant in session.scalars(select(Tenant).order_by(Tenant.id)):
        days = tenant.retention_days if tenant.retention_days is not None else policy.days
        if days < MIN_RETENTION_DAYS and not policy.force:
            raise RetentionError(
                f"tenant {tenant.id} has retention {days} days (< six months) and no override"
            )
        cutoff = now - timedelta(days=days)
        report.cutoffs[tenant.id] = cutoff
        t = tenant.id

        # Evidence first: remember the files, delete the rows, then see which files lost their last row.
        old_ev = (Evidence.tenant_id == t) & (Evidence.created_at < cutoff)
        kept(
            "evidence", _count(session, select(Evidence.id).where(old_ev, Evidence.id.in_(_held_evidence(t))))
        )
        ev_rows = session.execute(
            select(Evidence.sha256, Evidence.path, Evidence.size).where(
                old_ev, Evidence.id.not_in(_held_evidence(t))
            )
        ).all()
        for sha, path, size in ev_rows:
            doomed_files.setdefault(path, EvidenceRef(sha, path, size))
        gone(
            "evidence",
            session.execute(
                delete(Evidence)
                .where(old_ev, Evidence.id.not_in(_held_evidence(t)))
                .execution_options(**nosync)
            ).rowcount,
        )

        old_w = (WindowScore.tenant_id == t) & (WindowScore.created_at < cutoff)
        kept(
            "window_scores",
            _count(
                session, select(WindowScore.id).where(old_w, WindowScore.session_id.in_(_held_sessions(t)))
            ),
        )
        gone(
            "window_scores",
            session.execute(
                delete(WindowScore)
                .where(old_w, WindowScore.session_id.not_in(_held_sessions(t)))
                .execution_options(**nosync)
            ).rowcount,
        )

        gone(  # a logout record is useless once the session it refuses would have expired anyway
            "console_revocations",
            session.execute(
                delete(ConsoleRevocation)
                .where(ConsoleRevocation.tenant_id == t, ConsoleRevocation.expires_at < now)
                .execution_options(**nosync)
            ).rowcount,
        )

        old_c = (WatermarkCheck.tenant_id == t) & (WatermarkCheck.created_at < cutoff)
        kept(
            "watermark_checks",
            _count(
                session,
                select(WatermarkCheck.id).where(old_c, WatermarkCheck.session_id.in_(_held_sessions(t))),
            ),
        )
        gone(
            "watermark_checks",
            session.execute(
                delete(WatermarkCheck)
                .where(old_c, WatermarkCheck.session_id.not_in(_held_sessions(t)))
                .execution_options(**nosync)
            ).rowcount,
        )

        old_a = (Alert.tenant_id == t) & (Alert.created_at < cutoff)
        kept("alerts", _count(session, select(Alert.id).where(old_a, Alert.id.in_(_held_alerts(t)))))
        gone(
            "alerts",
            session.execute(
                delete(Alert).where(old_a, Alert.id.not_in(_held_alerts(t))).execution_options(**nosync)
            ).rowcount,
        )

        old_c = (Case.tenant_id == t) & (Case.status == "closed") & (Case.closed_at < cutoff)
        gone("cases", session.execute(delete(Case).where(old_c).execution_options(**nosync)).rowcount)

        # An ended session expires with its end. One that never ended (the server stopped while it streamed
        # and the speaker never resumed) expires once it started before the cutoff and nothing of it was
        # recorded since: otherwise its row (speaker, addresses) would outlive every retention period.
        recent_window = select(WindowScore.id).where(
            WindowScore.session_id == RoomSession.id, WindowScore.created_at >= cutoff
        )
        recent_check = select(WatermarkCheck.id).where(
            WatermarkCheck.session_id == RoomSession.id, WatermarkCheck.created_at >= cutoff
        )
        abandoned = (
            RoomSession.ended_at.is_(None)
            & (RoomSession.started_at < cutoff)
            & ~recent_window.exists()
            & ~recent_check.exists()
        )
        old_rs = (RoomSession.tenant_id == t) & ((RoomSession.ended_at < cutoff) | abandoned)
        kept(
            "room_sessions",
            _count(session, select(RoomSession.id).where(old_rs, RoomSession.id.in_(_held_sessions(t)))),
        )
        gone(
            "room_sessions",
            session.execute(
                delete(RoomSession)
                .where(old_rs, RoomSession.id.not_in(_held_sessions(t)))
                .execution_options(**nosync)
            ).rowcount,
        )

        old_s = (Scan.tenant_id == t) & (Scan.created_at < cutoff)
        kept("scans", _count(session, select(Scan.id).where(old_s, Scan.id.in_(_held_scans(t)))))
        gone(
            "scans",
            session.execute(
                delete(Scan).where(old_s, Scan.id.not_in(_held_scans(t))).execution_options(**nosync)
            ).rowcount,
        )

        old_j = (Job.tenant_id == t) & Job.status.in_(("done", "failed")) & (Job.finished_at < cutoff)
        gone("jobs", session.execute(delete(Job).where(old_j).execution_options(**nosync)).rowcount)

        old_d = (
            (WebhookDelivery.tenant_id == t)
            & WebhookDelivery.status.in_(("delivered", "dead"))
            & (WebhookDelivery.created_at < cutoff)
        )
        gone(
            "webhook_deliveries",
            session.execute(delete(WebhookDelivery).where(old_d).execution_options(**nosync)).rowcount,
        )

    # A file goes only if no evidence row of any tenant still points at it (dedup shares files).
    if doomed_files:
        still = set(session.scalars(select(Evidence.path).where(Evidence.path.in_(list(doomed_files)))).all())
        for p in still:
            doomed_files.pop(p, None)
    report.files_planned = len(doomed_files)

    audit.record(
        session,
        ctx or audit.AuditContext(actor="system:retention"),
        "retention.purge",
        target_type="store",
        details={
            "policy_days": policy.days,
            "forced_reason": report.forced_reason,
            "cutoffs": {k: v.isoformat() for k, v in report.cutoffs.items()},
            "deleted": report.deleted,
            "kept_for_open_cases": report.kept_for_open_cases,
            "files_planned": report.files_planned,
        },
        at=now,
    )

    engine = session.get_bind()
    root_tx = session.get_transaction()
    state = {"active": True}

    def _after_commit(_session: Session) -> None:
        if not state["active"]:
            return
        state["active"] = False
        report.committed = True
        if not doomed_files:
            return
        # Re-check with a fresh connection: a writer may have attached the same bytes meanwhile.
        with engine.connect() as conn:
            ref_again = set(
                conn.execute(select(Evidence.path).where(Evidence.path.in_(list(doomed_files)))).scalars()
            )
        for path, ref in doomed_files.items():
            if path in ref_again:
                continue
            if evidence_store.delete(ref):
                report.files_deleted += 1
                report.bytes_freed += ref.size

    def _after_end(_session: Session, transaction: object) -> None:
        if transaction is root_tx:  # committed (files handled above) or rolled back (files stay)
            state["active"] = False

    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_transaction_end", _after_end)
    return report


def sweep_orphans(
    session: Session, evidence_store: EvidenceStore, *, grace: timedelta = timedelta(hours=1)
) -> int:
    """Delete evidence files no row references, older than `grace` (so in-flight writes are spared)."""
    root = evidence_store.root
    if not root.is_dir():
        return 0
    limit = time.time() - grace.total_seconds()
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts[:1] == ("tmp",):
            for name in files:  # abandoned stream uploads
                p = Path(dirpath) / name
                if p.stat().st_mtime < limit:
                    p.unlink(missing_ok=True)
            continue
        for name in files:
            p = Path(dirpath) / name
            rel = str(rel_dir / name).replace(os.sep, "/")
            try:
                if p.stat().st_mtime >= limit:
                    continue
            except FileNotFoundError:
                continue
            if name.startswith(".tmp-"):
                p.unlink(missing_ok=True)
                continue
            if session.scalar(select(func.count()).select_from(Evidence).where(Evidence.path == rel)):
                continue
            sha, _, sfx = name.partition(".")
            try:
                ref = EvidenceRef(sha, evidence_store.relpath(sha, sfx), p.stat().st_size)
            except Exception:
                continue  # not one of ours: leave it
            if evidence_store.delete(ref):
                removed += 1
    return removed
