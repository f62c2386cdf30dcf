"""Security assessment (issue 6): controls from the rules as data files, judged against measured evidence,
failed controls filed as rectification items in the store.

    from voxwarden.assess import load_controls, evaluate_all, record_findings
    sets = load_controls()                                   # the packaged control files
    checklists = evaluate_all(sets, evidence, features=["voice_social", "live_rooms"])
    with store.session() as s:
        run = assessments.start_run(s, tenant_id, "cac-2018+deep-synthesis+labelling")
        record_findings(s, tenant_id, run.id, checklists, today=date.today())

Nothing heavy happens at import; the store is imported only by `findings`.
"""

from voxwarden.assess.checklist import (
    Checklist,
    ControlResult,
    Fact,
    InvalidEvidenceError,
    evaluate,
    evaluate_all,
    flatten_evidence,
    merge_evidence,
    required_evidence,
)
from voxwarden.assess.controls import (
    FEATURE_TYPES,
    STATUSES,
    Control,
    ControlFileError,
    ControlSet,
    Source,
    load_control_file,
    load_controls,
    packaged_control_files,
    parse_control_text,
)

__all__ = [
    "FEATURE_TYPES",
    "STATUSES",
    "Checklist",
    "Control",
    "ControlFileError",
    "ControlResult",
    "ControlSet",
    "Fact",
    "FindingsReport",
    "InvalidEvidenceError",
    "Source",
    "evaluate",
    "evaluate_all",
    "flatten_evidence",
    "load_control_file",
    "load_controls",
    "merge_evidence",
    "packaged_control_files",
    "parse_control_text",
    "record_findings",
    "required_evidence",
]


def __getattr__(name: str) -> object:  # lazy: keep the store (SQLAlchemy) out of plain checklist use
    if name in ("record_findings", "FindingsReport", "finding_key"):
        from voxwarden.assess import findings

        return getattr(findings, name)
    raise AttributeError(name)
