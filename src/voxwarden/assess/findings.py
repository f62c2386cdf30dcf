"""Turn failed controls into rectification items in the store, once per (run, control).

Which results become items: ``not_met`` and ``partly`` always; ``not_assessed`` by default too (the
missing evidence is itself something to fix), switch off with ``include_not_assessed=False``.
Severity: the control's severity for not met and not assessed, one step lower for partly met.
Due date: `today` + days by severity (`DEFAULT_DUE_DAYS`, overridable). The item's `finding` is
``"<framework>:<control id>"``; recording the same run again returns the existing items instead of
adding duplicates (the run row is locked first, so two writers for one run queue rather than race).
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
from voxwarden.store.models import AssessmentRun, Evidence
from voxwarden.store.repo import get_scoped

DEFAULT_DUE_DAYS: dict[str, int] = {"critical": 7, "high": 30, "medium": 60, "low": 90}


@dataclass
class FindingsReport:
    """What `record_findings` did: ids of items it created and of items that already existed."""

    run_id: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)

    @property
    def item_ids(self) -> list[str]:
        return self.created + self.existing


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
) -> FindingsReport:
    """File a rectification item for every finding of `checklists` under the assessment run `run_id`.

    Idempotent per (run, framework:control). Each created item is audited when `ctx` is given.
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
    for cl in checklists:
        for res in cl.findings(include_not_assessed=include_not_assessed):
            key = finding_key(cl.framework, res.control_id)
            if key in existing:
                report.existing.append(existing[key].id)
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
