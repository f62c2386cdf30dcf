"""Findings → rectification items: one per failed control and run, severity, due date, linked evidence."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from voxwarden.assess import Fact, evaluate_all, load_controls, record_findings
from voxwarden.assess.findings import finding_key
from voxwarden.store import AuditContext, NotFoundError, assessments, audit, cases
from voxwarden.store.evidence import attach_evidence

TODAY = date(2026, 3, 1)


def _checklists(evidence: dict[str, Any], features: list[str] | None = None):
    return evaluate_all(load_controls(), evidence, features)


def test_findings_become_items_once(store: Any, tenant: str, evidence: dict[str, Any]) -> None:
    evidence["logging"]["retention_days"] = 90  # not met, high
    evidence["logging"]["fields_recorded"] = ["account", "operation_time"]  # partly, high -> medium
    del evidence["governance"]["complaint_channel"]  # not assessed (two frameworks read it)
    cls = _checklists(evidence, ["voice_social", "live_rooms", "voice_cloning"])
    ctx = AuditContext(actor="test", tenant_id=tenant)
    with store.session() as s:
        run = assessments.start_run(s, tenant, "all")
        rep = record_findings(s, tenant, run.id, cls, today=TODAY, owner="secops", ctx=ctx)
        run_id = run.id
    assert len(rep.created) == 6 and rep.existing == []
    with store.session() as s:
        items = {i.finding: i for i in assessments.list_items(s, tenant, run_id=run_id)}
        assert set(items) == {
            "cac-2018-security-assessment:CAC18-LOG-RETENTION", "cac-2018-security-assessment:CAC18-LOG-FIELDS",
            "cac-2018-security-assessment:CAC18-COMPLAINTS", "deep-synthesis-2023:DS23-COMPLAINTS",
            "deep-synthesis-2023:DS23-LOGS",  # also reads retention_days: partly (log on, too short)
            "labelling-2025-gb45438:LB25-UNLABELLED-OUTPUT-LOGS"}  # so does art. 9: partly (agreement, short logs)
        ret = items["cac-2018-security-assessment:CAC18-LOG-RETENTION"]
        assert ret.severity == "high" and ret.due_date == TODAY + timedelta(days=30) and ret.owner == "secops"
        assert ret.title.startswith("Not met: Logs kept") and "retention_days" in (ret.notes or "")
        fields = items["cac-2018-security-assessment:CAC18-LOG-FIELDS"]
        assert fields.severity == "medium" and fields.title.startswith("Partly met")
        assert fields.due_date == TODAY + timedelta(days=60)
        assert items["deep-synthesis-2023:DS23-COMPLAINTS"].title.startswith("Not assessed")
        # its article number is not verified: the item says so, the verified one does not
        assert "[article number not verified]" in (items["deep-synthesis-2023:DS23-COMPLAINTS"].notes or "")
        assert "not verified" not in (items["cac-2018-security-assessment:CAC18-COMPLAINTS"].notes or "")
        assert items["deep-synthesis-2023:DS23-LOGS"].severity == "low"  # medium control, partly met
        unlabelled = items["labelling-2025-gb45438:LB25-UNLABELLED-OUTPUT-LOGS"]
        assert unlabelled.severity == "low" and unlabelled.title.startswith("Partly met")
        assert "Measures Art. 9" in (unlabelled.notes or "")
        assert len(audit.entries(s, tenant, action="rectification.create")) == 6
    # replay (e.g. after a crash): nothing new
    with store.session() as s:
        rep2 = record_findings(s, tenant, run_id, cls, today=TODAY)
    assert rep2.created == [] and sorted(rep2.existing) == sorted(rep.created)
    # a new run files its own items
    with store.session() as s:
        run2 = assessments.start_run(s, tenant, "all")
        rep3 = record_findings(s, tenant, run2.id, cls, today=TODAY, include_not_assessed=False)
    assert len(rep3.created) == 4


def test_compliant_run_files_nothing(store: Any, tenant: str, evidence: dict[str, Any]) -> None:
    with store.session() as s:
        run = assessments.start_run(s, tenant, "all")
        rep = record_findings(s, tenant, run.id, _checklists(evidence), today=TODAY)
    assert rep.item_ids == []


def test_evidence_linked_and_unknown_ids_noted(store: Any, tenant: str, evidence: dict[str, Any]) -> None:
    with store.session() as s:
        case = cases.open_case(s, tenant, "retention review", opened_by="test")
        ref = store.evidence.put(b"retention policy export", suffix="txt")
        ev_id = attach_evidence(s, tenant, ref, case_id=case.id).id
        run = assessments.start_run(s, tenant, "cac")
        run_id = run.id
    evidence["logging"]["retention_days"] = Fact(30, source="store:retention", evidence_id=ev_id)
    evidence["logging"]["audit_chain_intact"] = Fact(False, source="store:audit", evidence_id="nonexistent")
    with store.session() as s:
        record_findings(s, tenant, run_id, _checklists(evidence), today=TODAY)
        items = {i.finding.split(":")[1]: i for i in assessments.list_items(s, tenant, run_id=run_id)}
    assert items["CAC18-LOG-RETENTION"].evidence_id == ev_id
    assert items["CAC18-LOG-INTEGRITY"].evidence_id is None
    assert "nonexistent" in (items["CAC18-LOG-INTEGRITY"].notes or "")


def test_refuses_bad_input(store: Any, tenant: str, evidence: dict[str, Any]) -> None:
    from voxwarden.store.keys import create_tenant

    cls = _checklists(evidence)
    with store.session() as s:
        other = create_tenant(s, "other").id
        run_id = assessments.start_run(s, tenant, "x").id
    with store.session() as s, pytest.raises(NotFoundError):
        record_findings(s, other, run_id, cls, today=TODAY)  # another tenant's run
    with store.session() as s, pytest.raises(NotFoundError):
        record_findings(s, tenant, "nope", cls, today=TODAY)
    with store.session() as s, pytest.raises(TypeError):
        record_findings(s, tenant, run_id, cls, today=datetime(2026, 1, 1))  # type: ignore[arg-type]
    with store.session() as s, pytest.raises(ValueError, match="due_days"):
        record_findings(s, tenant, run_id, cls, today=TODAY, due_days={"high": -1})


def test_finding_key() -> None:
    assert finding_key("fw", "C-1") == "fw:C-1"


def test_carry_over_closes_carries_reopens(store: Any, tenant: str, evidence: dict[str, Any]) -> None:
    """Re-assessment at the store level, on SQLite and PostgreSQL: met closes (audited, with the run's
    evidence), still failing carries, failing again reopens; a replay changes nothing."""
    ctx = AuditContext(actor="cli:assess", tenant_id=tenant)
    evidence["logging"]["retention_days"] = 90
    evidence["governance"]["algorithm_filed"] = False
    with store.session() as s:
        r1 = assessments.start_run(s, tenant, "all").id
        rep1 = record_findings(s, tenant, r1, _checklists(evidence), today=TODAY, ctx=ctx, carry_over=True)
        by = {i.finding.split(":")[1]: i.id for i in assessments.list_items(s, tenant, run_id=r1)}
    # retention x3 (CAC, DS23-LOGS, LB25 art. 9 unlabelled output), algorithm filing
    assert len(rep1.created) == 4 and rep1.carried == rep1.closed == []
    evidence["logging"]["retention_days"] = Fact(200, source="measured:store")
    with store.session() as s:
        r2 = assessments.start_run(s, tenant, "all").id
        rep2 = record_findings(s, tenant, r2, _checklists(evidence), today=TODAY, ctx=ctx, carry_over=True)
    assert sorted(rep2.closed) == sorted([by["CAC18-LOG-RETENTION"], by["DS23-LOGS"],
                                          by["LB25-UNLABELLED-OUTPUT-LOGS"]])
    assert rep2.carried == [by["DS23-ALGORITHM-FILING"]] and rep2.created == []
    with store.session() as s:
        items = {i.id: i for i in assessments.list_items(s, tenant)}
        assert len(items) == 4 and items[by["CAC18-LOG-RETENTION"]].status == "done"
        assert f"assessment run {r2}" in (items[by["CAC18-LOG-RETENTION"]].notes or "")
        close = [e for e in audit.entries(s, tenant, action="rectification.close")]
        assert {e.target_id for e in close} == set(rep2.closed)
        assert all(e.details["run_id"] == r2 and "retention_days=200" in e.details["evidence"] for e in close)
    with store.session() as s:  # replay of run 2: nothing more
        again = record_findings(s, tenant, r2, _checklists(evidence), today=TODAY, ctx=ctx, carry_over=True)
    assert again.closed == [] and again.created == [] and again.carried == rep2.carried
    evidence["logging"]["retention_days"] = 30
    with store.session() as s:
        r3 = assessments.start_run(s, tenant, "all").id
        rep3 = record_findings(s, tenant, r3, _checklists(evidence), today=TODAY, ctx=ctx, carry_over=True)
        assert sorted(rep3.reopened) == sorted(rep2.closed) and rep3.created == []
        assert all(i.status == "open" and i.closed_at is None
                   for i in assessments.list_items(s, tenant) if i.id in rep3.reopened)
        assert len(audit.entries(s, tenant, action="rectification.reopen")) == 3
