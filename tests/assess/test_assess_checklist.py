"""Judging controls against evidence: statuses, missing evidence, applicability, three-valued rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from voxwarden.assess import (
    FEATURE_TYPES,
    Fact,
    InvalidEvidenceError,
    evaluate,
    evaluate_all,
    flatten_evidence,
    load_controls,
    merge_evidence,
    parse_control_text,
    required_evidence,
)
from voxwarden.assess.checklist import judge
from voxwarden.assess.controls import parse_condition

ALL_FEATURES = [f for f in FEATURE_TYPES if f != "any"]


def _status(evidence: dict[str, Any], framework: str, control: str, features: list[str] | None = None) -> str:
    cs = next(s for s in load_controls() if s.framework == framework)
    cl = evaluate(cs, evidence, features)
    return next(r for r in cl.results if r.control_id == control).status


def test_compliant_service_meets_every_control(evidence: dict[str, Any]) -> None:
    checklists = evaluate_all(load_controls(), evidence, ALL_FEATURES)
    bad = [(r.control_id, r.reason) for cl in checklists for r in cl.results if r.status != "met"]
    assert bad == []
    assert sum(cl.counts()["met"] for cl in checklists) == sum(len(cl.results) for cl in checklists)


def test_compliant_evidence_covers_every_required_key(evidence: dict[str, Any]) -> None:
    assert set(required_evidence(load_controls())) == set(flatten_evidence(evidence))


@pytest.mark.parametrize(("days", "status"), [(365, "met"), (184, "met"), (181, "partly"), (180, "partly"),
                                              (179, "not_met"), (30, "not_met"), (None, "not_met")])
def test_log_retention(evidence: dict[str, Any], days: int | None, status: str) -> None:
    evidence["logging"]["retention_days"] = days
    assert _status(evidence, "cac-2018-security-assessment", "CAC18-LOG-RETENTION") == status


def test_missing_evidence_default_is_not_assessed(evidence: dict[str, Any]) -> None:
    del evidence["governance"]["complaint_channel"]
    cs = next(s for s in load_controls() if s.framework == "cac-2018-security-assessment")
    r = next(r for r in evaluate(cs, evidence).results if r.control_id == "CAC18-COMPLAINTS")
    assert r.status == "not_assessed"
    assert r.missing == ("governance.complaint_channel",) and "missing evidence" in r.reason


def test_wrong_type_is_unknown_not_a_crash(evidence: dict[str, Any]) -> None:
    evidence["logging"]["retention_days"] = "six months"
    cs = next(s for s in load_controls() if s.framework == "cac-2018-security-assessment")
    r = next(r for r in evaluate(cs, evidence).results if r.control_id == "CAC18-LOG-RETENTION")
    assert r.status == "not_met" and "needs a number" in r.reason
    evidence["logging"]["retention_days"] = float("nan")
    assert _status(evidence, "cac-2018-security-assessment", "CAC18-LOG-RETENTION") == "not_met"
    evidence["governance"]["complaint_channel"] = "yes"  # not a boolean: cannot judge
    assert _status(evidence, "cac-2018-security-assessment", "CAC18-COMPLAINTS") == "not_assessed"


def test_partly_and_not_met(evidence: dict[str, Any]) -> None:
    fw = "labelling-2025-gb45438"
    evidence["labelling"]["metadata_fields"] = ["Label"]
    assert _status(evidence, fw, "LB25-METADATA-LABEL") == "partly"
    evidence["labelling"]["metadata_label"] = False
    assert _status(evidence, fw, "LB25-METADATA-LABEL") == "not_met"
    evidence["labelling"]["notice_positions"] = ["nowhere"]
    assert _status(evidence, fw, "LB25-EXPLICIT-AUDIO") == "partly"


def test_not_applicable_by_features(evidence: dict[str, Any]) -> None:
    evidence["governance"]["voice_consent_required"] = False
    fw = "deep-synthesis-2023"
    assert _status(evidence, fw, "DS23-VOICE-CONSENT", ["voice_social"]) == "not_applicable"
    assert _status(evidence, fw, "DS23-VOICE-CONSENT", ["voice_cloning"]) == "not_met"
    assert _status(evidence, fw, "DS23-VOICE-CONSENT", None) == "not_met"  # no profile: everything applies
    # "any" controls apply whatever the features
    assert _status(evidence, "cac-2018-security-assessment", "CAC18-PERSONAL-INFO", []) == "met"


def test_bad_features_and_evidence() -> None:
    cs = load_controls()[0]
    with pytest.raises(InvalidEvidenceError, match="unknown feature"):
        evaluate(cs, {}, ["toaster"])
    with pytest.raises(InvalidEvidenceError, match="not one string"):
        evaluate(cs, {}, "voice_social")
    with pytest.raises(InvalidEvidenceError, match="mapping"):
        evaluate(cs, ["retention_days"])  # type: ignore[arg-type]
    with pytest.raises(InvalidEvidenceError, match="keys"):
        evaluate(cs, {1: True})  # type: ignore[dict-item]
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(20):
        cur["x"] = {}
        cur = cur["x"]
    with pytest.raises(InvalidEvidenceError, match="deeper"):
        evaluate(cs, deep)


def test_empty_evidence_judges_nothing_as_met() -> None:
    for cl in evaluate_all(load_controls(), {}):
        assert cl.counts()["met"] == 0
        assert {r.status for r in cl.results} <= {"not_met", "not_assessed"}
        assert cl.findings() == list(cl.results)
        assert all(r.status == "not_met" for r in cl.findings(include_not_assessed=False))


def test_three_valued_rules() -> None:
    facts = flatten_evidence({"a": {"t": True, "f": False, "n": 3, "l": ["x"]}})
    J = lambda s: judge(parse_condition(s), facts)  # noqa: E731
    assert J({"any": ["a.t is true", "a.missing is true"]}) is True
    assert J({"all": ["a.t is true", "a.missing is true"]}) is None
    assert J({"all": ["a.f is true", "a.missing is true"]}) is False
    assert J({"any": ["a.f is true", "a.missing is true"]}) is None
    assert J({"not": "a.missing is true"}) is None
    assert J({"not": "a.f is true"}) is True
    assert J("a.missing exists") is False and J("a.n exists") is True
    assert J("a.n in [1, 2, 3]") is True and J("a.n not_in [1, 2, 3]") is False
    assert J("a.l contains x") is True and J("a.l contains y") is False
    assert J("a.n != 3") is False and J("a.n == 3") is True and J("a.n < 3.5") is True
    assert J("a.t is false") is False and J("a.f is false") is True


def test_facts_carry_source_and_evidence_ids(evidence: dict[str, Any]) -> None:
    evidence["logging"]["retention_days"] = Fact(90, source="store:retention", detail="policy says 90 d",
                                                 evidence_id="ev1")
    cs = next(s for s in load_controls() if s.framework == "cac-2018-security-assessment")
    r = next(r for r in evaluate(cs, evidence).results if r.control_id == "CAC18-LOG-RETENTION")
    assert r.status == "not_met" and r.evidence_ids == ["ev1"]
    d = r.to_dict()
    assert d["evidence"]["logging.retention_days"] == {"value": 90, "source": "store:retention",
                                                       "detail": "policy says 90 d", "evidence_id": "ev1"}
    assert d["source"].startswith("CAC 2018") and d["status"] == "not_met"


def test_merge_evidence() -> None:
    merged = merge_evidence({"logging": {"retention_days": 184}}, {"logging.audit_chain_intact": True},
                            {"logging": {"retention_days": 184}})
    assert {k: f.value for k, f in merged.items()} == {"logging.retention_days": 184,
                                                       "logging.audit_chain_intact": True}
    with pytest.raises(InvalidEvidenceError, match="twice"):
        merge_evidence({"logging": {"retention_days": 184}}, {"logging.retention_days": 30})


def test_new_regulation_is_a_new_file(evidence: dict[str, Any]) -> None:
    text = """
framework: eu-ai-act-50
title: EU AI Act art. 50 (audio)
regulation: Regulation (EU) 2024/1689
controls:
  - id: EU50-MACHINE-READABLE
    title: Machine-readable marking
    requirement: Synthetic audio is marked in a machine-readable, detectable way.
    source: {regulation: EU AI Act, article: "Art. 50(2)", topic: machine-readable marking}
    evidence: [labelling.metadata_label, labelling.watermark_detect_rate]
    rule:
      met: {all: ["labelling.metadata_label is true", "labelling.watermark_detect_rate >= 0.9"]}
    severity: high
    applies_to: [speech_synthesis]
"""
    cs = parse_control_text(text, "eu.yaml")
    ev = copy.deepcopy(evidence)
    assert evaluate(cs, ev).results[0].status == "met"
    ev["labelling"]["watermark_detect_rate"] = 0.5
    cl = evaluate(cs, ev, ["voice_social"])
    assert cl.results[0].status == "not_applicable"
    assert evaluate(cs, ev).to_dict()["counts"]["not_met"] == 1


@pytest.mark.parametrize(("on_request", "agreement", "days", "status"), [
    (False, False, 30, "met"),  # never hands out unlabelled audio: nothing to keep
    (True, True, 184, "met"),
    (True, True, 180, "partly"),  # agreement in place, logs too short
    (True, False, 365, "partly"),  # logs kept, agreement silent
    (True, False, 90, "not_met"),
    (None, True, 200, "met"),  # unknown, but both conditions of art. 9 hold anyway
    (None, True, 90, "not_assessed"),
])
def test_unlabelled_output_on_request(evidence: dict[str, Any], on_request: bool | None, agreement: bool,
                                      days: int, status: str) -> None:
    evidence["labelling"]["unlabelled_output_on_request"] = on_request
    evidence["governance"]["labelling_in_user_agreement"] = agreement
    evidence["logging"]["retention_days"] = days
    assert _status(evidence, "labelling-2025-gb45438", "LB25-UNLABELLED-OUTPUT-LOGS") == status


@pytest.mark.parametrize(("framework", "control", "section", "key"), [
    ("cac-2018-security-assessment", "CAC18-REPORT-FILED", "governance", "assessment_report_filed"),
    ("labelling-2025-gb45438", "LB25-USER-AGREEMENT", "governance", "labelling_in_user_agreement"),
    ("deep-synthesis-2023", "DS23-MANAGEMENT-RULES", "governance", "deep_synthesis_rules_published"),
])
def test_new_declared_facts_decide_their_controls(evidence: dict[str, Any], framework: str, control: str,
                                                  section: str, key: str) -> None:
    assert _status(evidence, framework, control) == "met"
    evidence[section][key] = False
    assert _status(evidence, framework, control) == "not_met"
    del evidence[section][key]
    assert _status(evidence, framework, control) == "not_assessed"
    assert _status(evidence, framework, control, ["distribution_platform"]) == "not_applicable"


def test_result_carries_verified_flag_and_notes(evidence: dict[str, Any]) -> None:
    cs = next(s for s in load_controls() if s.framework == "deep-synthesis-2023")
    by_id = {r.control_id: r for r in evaluate(cs, evidence).results}
    r = by_id["DS23-RUMOUR-REFUTATION"]
    d = r.to_dict()
    assert d["verified"] is False and d["article"] is None and "Art. 11" in d["notes"]
    assert d["source"].endswith("[article number not verified]")
    ok = by_id["DS23-CONSPICUOUS-LABEL"].to_dict()
    assert ok["verified"] is True and ok["article"] == "Art. 17(1)(ii)" and ok["notes"] == ""
    assert "not verified" not in ok["source"]
