"""Turn failed controls into rectification items in the store, once per (run, control).

Which results become items: ``not_met`` and ``partly`` always; ``not_assessed`` by default too (the
missing evidence is itself something to fix), switch off with ``include_not_assessed=False``.
Severity: the control's severity for not met and not assessed, one step lower for partly met.
Due date: `today` + days by severity (`DEFAULT_DUE_DAYS`, overridable). The item's `finding` is
``"<framework>:<control id>"``; recording the same run again returns the existing items instead of
adding duplicates (the run row is locked first, so two writers for one run queue rather than race).

Re-assessment (``carry_over=True``, what `voxwarden assess` uses): items of earlier runs are followed up
instead of filed again. A finding that still fails keeps its open item (*carried*); a control that is now
**met** closes the open items of its finding as done, with this run's evidence in the notes and a
``rectification.close`` audit entry (actor the assessment); a finding that fails again after its item
was closed as done *reopens* that item (``rectification.reopen``); an item closed as an accepted risk
stays closed. Replaying the same run changes nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from voxwarden.assess.checklist import Checklist, ControlResult
from voxwarden.assess.controls import SEVERITIES
from voxwarden.store import assessments
from voxwarden.store.audit import AuditContext, record
from voxwarden.store.errors import NotFoundError
from voxwarden.store.models import AssessmentRun, Evidence, RectificationItem
from voxwarden.store.repo import get_scoped

DEFAULT_DUE_DAYS: dict[str, int] = {"critical": 7, "high": 30, "medium": 60, "low": 90}


@dataclass
class FindingsReport:
    """What `record_findings` did: ids of items it created and of items that already existed."""

    run_id: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # open items of earlier runs whose finding still fails
    reopened: list[str] = field(default_factory=list)  # closed (done) items whose finding fails again
    closed: list[str] = field(default_factory=list)  # open items whose control this run measured as met
    accepted: list[str] = field(default_factory=list)  # accepted-risk items whose finding still fails

    @property
    def item_ids(self) -> list[str]:
        """Items this run's findings are tracked by (new, replayed, carried over, reopened)."""
        return self.created + self.existing + self.carried + self.reopened


def finding_key(framework: str, control_id: str) -> str:
    """The `finding` stored on a rectification item: which control of which framework failed."""
    return f"{framework}:{control_id}"


def item_severity(result: ControlResult) -> str:
    """Control severity, one step lower when the control is partly met."""
    i = SEVERITIES.index(result.severity)
    return SEVERITIES[max(i - 1, 0)] if result.status == "partly" else result.severity


def _notes(result: ControlResult, unlinked: list[str]) -> str:
    ev = {k: f.to_dict() for k, f in result.evidence.items()}
    lines = [
        f"status: {result.status}",
        f"reason: {result.reason}",
        f"rule: {result.rule}",
        f"source: {result.source}",
        f"requirement: {result.requirement}",
        "evidence: " + json.dumps(ev, ensure_ascii=False, sort_keys=True, default=str),
    ]
    if result.missing:
        lines.append("missing evidence: " + ", ".join(result.missing))
    if unlinked:
        lines.append("evidence ids not found in the store: " + ", ".join(unlinked))
    return "\n".join(lines)


def record_findings(
    session: Session,
    tenant_id: str,
    run_id: str,
    checklists: Iterable[Checklist],
    *,
    today: date,
    owner: str | None = None,
    due_days: Mapping[str, int] | None = None,
    include_not_assessed: bool = True,
    ctx: AuditContext | None = None,
    carry_over: bool = False,
    now: datetime | None = None,
) -> FindingsReport:
    """File a rectification item for every finding of `checklists` under the assessment run `run_id`.

    Idempotent per (run, framework:control). Each created item is audited when `ctx` is given. With
    `carry_over`, earlier runs' items are followed up instead (module docstring): carried, closed, reopened.
    """
    if isinstance(today, datetime) or not isinstance(today, date):
        raise TypeError("today must be a date (not a datetime)")
    days = {**DEFAULT_DUE_DAYS, **(dict(due_days) if due_days else {})}
    for sev, n in days.items():
        if sev not in SEVERITIES or isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"due_days: bad entry {sev!r}: {n!r} (severity -> non-negative days)")
    get_scoped(session, AssessmentRun, tenant_id, run_id, lock=True)  # serialise writers of this run
    existing = {it.finding: it for it in assessments.list_items(session, tenant_id, run_id=run_id)}
    report = FindingsReport(run_id=run_id)
    checklists = list(checklists)
    earlier: dict[str, list[RectificationItem]] = {}
    if carry_over:
        keys = [finding_key(cl.framework, r.control_id)[:200] for cl in checklists for r in cl.results]
        for it in assessments.items_for_findings(session, tenant_id, keys, lock=True):
            if it.run_id != run_id:
                earlier.setdefault(it.finding, []).append(it)
        for cl in checklists:
            for res in cl.results:
                if res.status == "met":
                    _close_met(session, tenant_id, run_id, finding_key(cl.framework, res.control_id), res,
                               earlier, report, ctx, now)
    for cl in checklists:
        for res in cl.findings(include_not_assessed=include_not_assessed):
            key = finding_key(cl.framework, res.control_id)
            if key in existing:
                report.existing.append(existing[key].id)
                continue
            if carry_over and _follow_up(session, tenant_id, run_id, key, res, earlier.get(key[:200], []),
                                         report, ctx, now):
                continue
            evidence_id, unlinked = None, []
            for eid in res.evidence_ids:
                try:
                    get_scoped(session, Evidence, tenant_id, eid)
                except NotFoundError:
                    unlinked.append(eid)
                    continue
                evidence_id = evidence_id or eid
            sev = item_severity(res)
            prefix = {"not_met": "Not met", "partly": "Partly met", "not_assessed": "Not assessed"}[res.status]
            item = assessments.add_item(
                session, tenant_id, finding=key[:200], title=f"{prefix}: {res.title}"[:500], severity=sev,
                owner=owner, due_date=today + timedelta(days=days[sev]), run_id=run_id,
                evidence_id=evidence_id, notes=_notes(res, unlinked),
            )
            existing[key] = item
            report.created.append(item.id)
            if ctx is not None:
                record(session, ctx, "rectification.create", target_type="rectification_item", target_id=item.id,
                       details={"run_id": run_id, "finding": key, "status": res.status, "severity": sev})
    return report


def _stamp(now: datetime | None) -> datetime:
    from voxwarden.store.columns import utcnow

    return now or utcnow()


def _note(old: str | None, text: str, now: datetime) -> str:
    line = f"[{now.strftime('%Y-%m-%d %H:%M')}Z assess] {text}"
    return f"{old}\n{line}" if old else line


def evidence_summary(run_id: str, res: ControlResult) -> str:
    """The evidence link of a closing: the run and the measured values that meet the control."""
    vals = "; ".join(f"{k}={f.value!r} [{f.source}]" for k, f in sorted(res.evidence.items()))
    return f"assessment run {run_id}: {res.control_id} met ({vals or 'no values'})"


def _close_met(session: Session, tenant_id: str, run_id: str, key: str, res: ControlResult,
               earlier: dict[str, list[RectificationItem]], report: FindingsReport, ctx: AuditContext | None,
               now: datetime | None) -> None:
    t = _stamp(now)
    ev = evidence_summary(run_id, res)
    ev_ids = list(res.evidence_ids)
    for it in earlier.get(key[:200], []):
        if it.status in assessments.CLOSED_ITEM_STATUSES:
            continue
        assessments.update_item(session, tenant_id, it.id, status="done",
                                notes=_note(it.notes, f"closed (done) by re-assessment: {ev}", t), now=t)
        report.closed.append(it.id)
        if ctx is not None:
            record(session, ctx, "rectification.close", target_type="rectification_item", target_id=it.id,
                   details={"status": "done", "run_id": run_id, "finding": key, "evidence": ev[:2000],
                            "evidence_ids": ev_ids, "by": "re-assessment"})


def _follow_up(session: Session, tenant_id: str, run_id: str, key: str, res: ControlResult,
               items: list[RectificationItem], report: FindingsReport, ctx: AuditContext | None,
               now: datetime | None) -> bool:
    """A failing finding with items from earlier runs: carry the open ones, else reopen the newest done
    one, else (accepted risk) leave it. False when there is no earlier item (file a new one)."""
    open_items = [it for it in items if it.status not in assessments.CLOSED_ITEM_STATUSES]
    if open_items:
        report.carried += [it.id for it in open_items]
        return True
    def closed_when(i: RectificationItem) -> datetime:
        return i.closed_at or i.created_at

    done = sorted((it for it in items if it.status == "done"), key=closed_when)
    accepted = sorted((it for it in items if it.status == "accepted_risk"), key=closed_when)
    if accepted and (not done or closed_when(accepted[-1]) >= closed_when(done[-1])):
        report.accepted.append(accepted[-1].id)  # the newest decision on this finding: the risk is accepted
        return True
    if not done:
        return False
    it = done[-1]
    t = _stamp(now)
    assessments.update_item(session, tenant_id, it.id, status="open", notes=_note(
        it.notes, f"reopened by re-assessment run {run_id}: {res.status} ({res.reason})", t), now=t)
    report.reopened.append(it.id)
    if ctx is not None:
        record(session, ctx, "rectification.reopen", target_type="rectification_item", target_id=it.id,
               details={"status": "open", "run_id": run_id, "finding": key, "control_status": res.status,
                        "by": "re-assessment"})
    return True
