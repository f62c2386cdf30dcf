"""Judge controls against measured facts: each control → met / partly / not met / not applicable /
not assessed, with the evidence it used and the rule it comes from.

The evidence is a flat mapping of dotted keys (``section.name``) to values or `Fact`s. Sections are the
parts of the assessment that measure things (``detection``, ``labelling``, ``live``, ``logging``,
``governance``...), so each measuring step of `voxwarden assess` returns its own section and
`merge_evidence` puts them together; nested mappings are flattened (``{"logging": {"retention_days":
184}}`` → ``logging.retention_days``). A `Fact` carries where the value came from and, optionally, the id
of a stored evidence row, which becomes the rectification item's linked evidence.

Missing evidence: a key that is absent or None (or NaN, or of a type the rule cannot compare) is unknown.
Rules use three-valued logic; when the outcome depends on an unknown the control gets its `if_missing`
status — ``not_assessed`` by default (we could not tell; the findings step still files an item asking for
the evidence), or ``not_met`` for controls where absence of proof is itself the failure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voxwarden.assess.controls import FEATURE_TYPES, STATUSES, Condition, Control, ControlSet

MAX_EVIDENCE_KEYS = 10_000
MAX_DEPTH = 8


class InvalidEvidenceError(ValueError):
    """The evidence mapping or feature list handed to `evaluate` cannot be used."""


@dataclass(frozen=True)
class Fact:
    """A measured or declared value with where it came from.

    `source` says how it was obtained (``measured:eval``, ``declared:config``, ``store:retention``);
    `detail` is a human sentence for the report; `evidence_id` is a store `evidence` row backing it.
    """

    value: Any
    source: str = "declared"
    detail: str | None = None
    evidence_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": self.value, "source": self.source}
        if self.detail:
            d["detail"] = self.detail
        if self.evidence_id:
            d["evidence_id"] = self.evidence_id
        return d


def flatten_evidence(evidence: Mapping[str, Any], prefix: str = "", _depth: int = 0) -> dict[str, Fact]:
    """Flatten nested sections into dotted keys and wrap plain values as `Fact(value, "declared")`."""
    if not isinstance(evidence, Mapping):
        raise InvalidEvidenceError(f"evidence must be a mapping, got {type(evidence).__name__}")
    if _depth > MAX_DEPTH:
        raise InvalidEvidenceError(f"evidence nested deeper than {MAX_DEPTH} levels at {prefix!r}")
    out: dict[str, Fact] = {}
    for k, v in evidence.items():
        if not isinstance(k, str) or not k or len(k) > 200:
            raise InvalidEvidenceError(f"evidence keys must be non-empty strings, got {k!r} under {prefix!r}")
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            out.update(flatten_evidence(v, key, _depth + 1))
        elif isinstance(v, Fact):
            out[key] = v
        else:
            out[key] = Fact(v)
        if len(out) > MAX_EVIDENCE_KEYS:
            raise InvalidEvidenceError(f"more than {MAX_EVIDENCE_KEYS} evidence keys")
    return out


def merge_evidence(*sections: Mapping[str, Any]) -> dict[str, Fact]:
    """Combine the evidence of several measuring steps; a key given twice with different values is refused."""
    out: dict[str, Fact] = {}
    for sec in sections:
        for k, f in flatten_evidence(sec).items():
            if k in out and out[k].value != f.value:
                raise InvalidEvidenceError(f"evidence key {k!r} given twice: {out[k].value!r} and {f.value!r}")
            out[k] = f
    return out


@dataclass(frozen=True)
class ControlResult:
    """The judgement of one control, with everything a report or a rectification item needs."""

    framework: str
    control_id: str
    title: str
    requirement: str
    status: str
    severity: str
    source: str
    rule: str
    reason: str
    evidence: dict[str, Fact] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    article: str | None = None
    verified: bool = True  # False: the control's article number is not verified against the text
    notes: str = ""  # the control file's notes (why unverified, caveats)

    @property
    def evidence_ids(self) -> list[str]:
        return [f.evidence_id for f in self.evidence.values() if f.evidence_id]

    def to_dict(self) -> dict[str, Any]:
        return {
            "framework": self.framework, "control": self.control_id, "title": self.title,
            "requirement": self.requirement, "status": self.status, "severity": self.severity,
            "source": self.source, "rule": self.rule, "reason": self.reason,
            "evidence": {k: f.to_dict() for k, f in self.evidence.items()}, "missing": list(self.missing),
            "article": self.article, "verified": self.verified, "notes": self.notes,
        }


@dataclass(frozen=True)
class Checklist:
    """All control results of one framework for one service."""

    framework: str
    title: str
    regulation: str
    version: int
    results: tuple[ControlResult, ...]
    features: tuple[str, ...] | None = None

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            c[r.status] += 1
        return c

    def findings(self, *, include_not_assessed: bool = True) -> list[ControlResult]:
        """Results that need rectifying: not met, partly met, and (by default) not assessed."""
        bad = {"not_met", "partly"} | ({"not_assessed"} if include_not_assessed else set())
        return [r for r in self.results if r.status in bad]

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "title": self.title, "regulation": self.regulation,
                "version": self.version, "features": list(self.features) if self.features is not None else None,
                "counts": self.counts(), "results": [r.to_dict() for r in self.results]}


# ------------------------------------------------------------------------------------------ evaluation

_UNKNOWN = None  # three-valued logic: True, False, None (unknown)


def _usable(f: Fact | None) -> bool:
    if f is None or f.value is None:
        return False
    return not (isinstance(f.value, float) and math.isnan(f.value))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _leaf(c: Condition, facts: Mapping[str, Fact], problems: list[str]) -> bool | None:
    f = facts.get(c.key or "")
    if c.op == "exists":
        return _usable(f)
    if not _usable(f):
        return _UNKNOWN
    v = f.value  # type: ignore[union-attr]
    op, want = c.op, c.value
    if op == "is true" or op == "is false":
        if not isinstance(v, bool):
            problems.append(f"{c.key} is {type(v).__name__} {v!r}, rule needs true/false")
            return _UNKNOWN
        return v is (op == "is true")
    if op in (">=", "<=", ">", "<"):
        if not _is_number(v):
            problems.append(f"{c.key} is {type(v).__name__} {v!r}, rule needs a number")
            return _UNKNOWN
        return {">=": v >= want, "<=": v <= want, ">": v > want, "<": v < want}[op]
    if op == "==":
        return bool(v == want)
    if op == "!=":
        return bool(v != want)
    if op in ("in", "not_in"):
        if isinstance(v, list | dict | set):
            problems.append(f"{c.key} is a {type(v).__name__}, rule needs a single value")
            return _UNKNOWN
        return (v in want) == (op == "in")
    if op == "contains":
        if isinstance(v, list | tuple | set):
            return want in v
        if isinstance(v, str) and isinstance(want, str):
            return want in v
        problems.append(f"{c.key} is {type(v).__name__}, 'contains' needs a list or text")
        return _UNKNOWN
    raise AssertionError(f"unhandled operator {op!r}")  # parse_condition admits no other


def judge(c: Condition, facts: Mapping[str, Fact], problems: list[str] | None = None) -> bool | None:
    """Evaluate a condition: True, False, or None when it depends on unknown evidence."""
    problems = [] if problems is None else problems
    if c.kind == "leaf":
        return _leaf(c, facts, problems)
    if c.kind == "not":
        r = judge(c.children[0], facts, problems)
        return None if r is None else not r
    vals = [judge(k, facts, problems) for k in c.children]
    if c.kind == "all":
        return False if False in vals else (None if None in vals else True)
    return True if True in vals else (None if None in vals else False)


def _check_features(features: Iterable[str] | None) -> tuple[str, ...] | None:
    if features is None:
        return None
    if isinstance(features, str):
        raise InvalidEvidenceError("features must be a list of feature types, not one string")
    out = tuple(features)
    for f in out:
        if f not in FEATURE_TYPES:
            raise InvalidEvidenceError(f"unknown feature type {f!r} (known: {', '.join(FEATURE_TYPES)})")
    return out


def applies(control: Control, features: tuple[str, ...] | None) -> bool:
    """Whether the control concerns a service with these features (None: assume it does)."""
    return features is None or "any" in control.applies_to or bool(set(control.applies_to) & set(features))


def evaluate_control(
    control: Control, facts: Mapping[str, Fact], *, framework: str = "", features: tuple[str, ...] | None = None
) -> ControlResult:
    """Judge one control against flattened facts."""
    used = {k: facts[k] for k in control.evidence if k in facts}
    missing = tuple(k for k in control.evidence if not _usable(facts.get(k)))
    rule = control.met.text + (f"  [partly: {control.partly.text}]" if control.partly else "")
    base = dict(framework=framework, control_id=control.id, title=control.title, requirement=control.requirement,
                severity=control.severity, source=control.source.cite(), rule=rule, evidence=used, missing=missing,
                article=control.source.article, verified=control.source.verified, notes=control.notes)
    if not applies(control, features):
        return ControlResult(status="not_applicable", reason=f"applies to {', '.join(control.applies_to)}; "
                             f"service has {', '.join(features or ()) or 'none of these'}", **base)
    problems: list[str] = []
    met = judge(control.met, facts, problems)
    if met is True:
        return ControlResult(status="met", reason=f"met: {control.met.text}", **base)
    partly = judge(control.partly, facts, problems) if control.partly is not None else False
    if met is False and partly is True:
        return ControlResult(status="partly", reason=f"partly: {control.partly.text}; "  # type: ignore[union-attr]
                             f"not {control.met.text}", **base)
    if met is None:
        why = "; ".join(problems) or f"missing evidence: {', '.join(missing) or 'none listed'}"
        return ControlResult(status=control.if_missing, reason=f"cannot judge ({why})", **base)
    extra = f" (also unknown: {'; '.join(problems) or ', '.join(missing)})" if partly is None else ""
    return ControlResult(status="not_met", reason=f"not met: {control.met.text}{extra}", **base)


def evaluate(
    control_set: ControlSet, evidence: Mapping[str, Any], features: Iterable[str] | None = None
) -> Checklist:
    """Judge every control of a framework against the evidence, for a service with `features`."""
    facts = flatten_evidence(evidence)
    feats = _check_features(features)
    results = tuple(evaluate_control(c, facts, framework=control_set.framework, features=feats)
                    for c in control_set.controls)
    return Checklist(framework=control_set.framework, title=control_set.title, regulation=control_set.regulation,
                     version=control_set.version, results=results, features=feats)


def evaluate_all(
    control_sets: Iterable[ControlSet], evidence: Mapping[str, Any], features: Iterable[str] | None = None
) -> list[Checklist]:
    """`evaluate` for several frameworks with the same evidence."""
    feats = _check_features(features)
    return [evaluate(cs, evidence, feats) for cs in control_sets]


def required_evidence(control_sets: Iterable[ControlSet]) -> dict[str, list[str]]:
    """Evidence key → the controls ("framework:id") that read it: the contract for the measuring steps."""
    out: dict[str, list[str]] = {}
    for cs in control_sets:
        for c in cs.controls:
            for k in c.evidence:
                out.setdefault(k, []).append(f"{cs.framework}:{c.id}")
    return dict(sorted(out.items()))
