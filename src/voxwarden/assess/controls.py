"""Control files: the checklist of a regulation as data (YAML), loaded and validated with errors that
name the file and line, so adding a regulation means adding a file, not code.

A control file looks like::

    framework: cac-2018-security-assessment     # id; also the rectification `finding` prefix
    title: CAC 2018 security assessment ...
    regulation: Provisions on Security Assessment of ...
    version: 1
    controls:
      - id: LOG-RETENTION
        title: Logs kept for at least six months
        requirement: In our own words, what the service must do.
        source: {regulation: "...", article: "Art. 5", topic: "log retention"}   # + verified: false
        notes: free text (required when source.verified is false: what could not be checked)
        evidence: [logging.retention_days]
        rule:
          met: "logging.retention_days >= 184"
          partly: "logging.retention_days >= 90"        # optional
        if_missing: not_assessed                        # or not_met (default not_assessed)
        severity: high                                  # low | medium | high | critical
        applies_to: [voice_social, live_rooms]          # feature types, or [any]

Conditions (`met`, `partly`) are a string ``KEY OP VALUE``, or ``{all: [...]}`` / ``{any: [...]}`` /
``{not: ...}`` of conditions. OP is one of ``>= <= > < == != in not_in contains``, or the unary
``KEY is true`` / ``KEY is false`` / ``KEY exists``. VALUE is read as YAML (numbers, true/false,
quoted strings, ``[lists]``). Every key a rule reads must be listed under `evidence`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

STATUSES = ("met", "partly", "not_met", "not_applicable", "not_assessed")
SEVERITIES = ("low", "medium", "high", "critical")  # same as voxwarden.store.models.SEVERITIES
MISSING_POLICIES = ("not_met", "not_assessed")

#: What a service can have; a control applies when its `applies_to` meets the service's features.
FEATURE_TYPES = (
    "any",  # applies to every service
    "public_opinion",  # forums, chat rooms, group chat, voice social apps (CAC 2018 art. 2)
    "voice_social",  # user-to-user voice: voice chat apps, voice rooms
    "live_rooms",  # live voice rooms / live streaming monitored in real time
    "user_uploads",  # users publish audio files
    "speech_synthesis",  # the service generates speech (TTS)
    "voice_cloning",  # the service imitates or edits a person's voice
    "distribution_platform",  # the service distributes content others made (propagation platform)
)

MAX_FILE_BYTES = 1_000_000
MAX_CONTROLS = 1_000
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
BINARY_OPS = (">=", "<=", "!=", "==", ">", "<", "not_in", "in", "contains")
UNARY_OPS = ("is true", "is false", "exists")
_COND_RE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.]+)\s+(?P<op>>=|<=|!=|==|>|<|not_in|in|contains)\s+(?P<value>.+?)\s*$")
_UNARY_RE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.]+)\s+(?P<op>is true|is false|exists)\s*$")


class ControlFileError(ValueError):
    """A control file that cannot be used; the message names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path, self.line, self.reason = str(path), line, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


#: What `Source.cite()` appends for a control whose article could not be checked against the text.
UNVERIFIED_MARK = "article number not verified"


@dataclass(frozen=True)
class Source:
    """Where a control comes from: the regulation, the article when we are sure of it, and the topic.

    `verified` is False when the control file says ``verified: false``: the obligation is real but its
    article number could not be checked against the official text (the control's `notes` say why). The
    citation then carries a marker, so the report and every rectification item show it.
    """

    regulation: str
    topic: str
    article: str | None = None
    verified: bool = True

    def cite(self) -> str:
        art = f", {self.article}" if self.article else ""
        mark = "" if self.verified else f" [{UNVERIFIED_MARK}]"
        return f"{self.regulation}{art} ({self.topic}){mark}"


@dataclass(frozen=True)
class Condition:
    """A parsed rule: a leaf (`key op value`) or a combinator (`all`, `any`, `not`) over `children`."""

    kind: str  # "leaf", "all", "any", "not"
    key: str | None = None
    op: str | None = None
    value: Any = None
    children: tuple[Condition, ...] = ()
    text: str = ""

    def keys(self) -> set[str]:
        if self.kind == "leaf":
            return {self.key} if self.key else set()
        out: set[str] = set()
        for c in self.children:
            out |= c.keys()
        return out


@dataclass(frozen=True)
class Control:
    """One checklist item: what is required, from which rule, judged on which evidence, how bad if failed."""

    id: str
    title: str
    requirement: str
    source: Source
    evidence: tuple[str, ...]
    met: Condition
    partly: Condition | None
    severity: str
    applies_to: tuple[str, ...]
    if_missing: str = "not_assessed"
    line: int | None = None
    notes: str = ""  # free text kept from the file: what was not verified and why, caveats

    @property
    def verified(self) -> bool:
        """Whether the control's article was checked against the regulation's text."""
        return self.source.verified


@dataclass(frozen=True)
class ControlSet:
    """All controls of one regulation, as loaded from one file."""

    framework: str
    title: str
    regulation: str
    version: int
    controls: tuple[Control, ...]
    path: str
    description: str = ""

    def get(self, control_id: str) -> Control:
        for c in self.controls:
            if c.id == control_id:
                return c
        raise KeyError(control_id)

    def evidence_keys(self) -> set[str]:
        """Every evidence key any control of this set reads (what the measuring side must provide)."""
        return {k for c in self.controls for k in c.evidence}


# ---------------------------------------------------------------------------------------- YAML with lines


class _Map(dict):
    line: int | None = None


class _Seq(list):
    line: int | None = None


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line (1-based) of every mapping and sequence."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate key {sorted(dup)[0]!r}", node.start_mark
        )
    m = _Map(loader.construct_mapping(node, deep=True))
    m.line = node.start_mark.line + 1
    return m


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    s = _Seq(loader.construct_sequence(node, deep=True))
    s.line = node.start_mark.line + 1
    return s


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def _line(obj: Any, default: int | None) -> int | None:
    return getattr(obj, "line", None) or default


# ---------------------------------------------------------------------------------------- parsing


class _Ctx:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, msg: str, line: int | None) -> ControlFileError:
        return ControlFileError(self.path, msg, line)

    def text(self, d: dict, key: str, line: int | None, *, required: bool = True, max_len: int = 2000) -> str:
        v = d.get(key)
        if v is None:
            if required:
                raise self.fail(f"missing required field {key!r}", line)
            return ""
        if not isinstance(v, str) or (required and not v.strip()):
            raise self.fail(f"field {key!r} must be a non-empty string", line)
        if len(v) > max_len:
            raise self.fail(f"field {key!r} longer than {max_len} characters", line)
        return v.strip()


def parse_condition(spec: Any, *, path: str = "<rule>", line: int | None = None) -> Condition:
    """Parse a rule (string or all/any/not mapping) into a `Condition`; `ControlFileError` if malformed."""
    ctx = _Ctx(path)
    ln = _line(spec, line)
    if isinstance(spec, str):
        m = _UNARY_RE.match(spec)
        if m:
            key, op, value = m["key"], m["op"], None
        else:
            m = _COND_RE.match(spec)
            if not m:
                raise ctx.fail(
                    f"cannot read condition {spec!r}: expected 'KEY OP VALUE' with OP one of "
                    f"{' '.join(BINARY_OPS)}, or 'KEY is true|is false|exists'", ln)
            key, op = m["key"], m["op"]
            try:
                value = yaml.safe_load(m["value"])
            except yaml.YAMLError as e:
                raise ctx.fail(f"cannot read value in condition {spec!r}: {e}", ln) from e
            if op in ("in", "not_in") and not isinstance(value, list):
                raise ctx.fail(f"condition {spec!r}: {op!r} needs a [list] value", ln)
            if op in (">=", "<=", ">", "<") and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ctx.fail(f"condition {spec!r}: {op!r} needs a number", ln)
        if not _KEY_RE.match(key):
            raise ctx.fail(f"bad evidence key {key!r} in condition (lowercase, dotted: section.name)", ln)
        return Condition("leaf", key=key, op=op, value=value, text=spec.strip())
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise ctx.fail("a combined condition has exactly one of 'all', 'any', 'not'", ln)
        (kind, body), = spec.items()
        if kind == "not":
            child = parse_condition(body, path=path, line=ln)
            return Condition("not", children=(child,), text=f"not ({child.text})")
        if kind in ("all", "any"):
            if not isinstance(body, list) or not body:
                raise ctx.fail(f"{kind!r} needs a non-empty list of conditions", ln)
            kids = tuple(parse_condition(c, path=path, line=_line(body, ln)) for c in body)
            joiner = " and " if kind == "all" else " or "
            return Condition(kind, children=kids, text=joiner.join(f"({k.text})" for k in kids))
        raise ctx.fail(f"unknown combinator {kind!r}: use 'all', 'any' or 'not'", ln)
    raise ctx.fail(f"a condition must be a string or an all/any/not mapping, got {type(spec).__name__}", ln)


def _parse_control(ctx: _Ctx, raw: Any, index: int, file_line: int | None) -> Control:
    ln = _line(raw, file_line)
    if not isinstance(raw, dict):
        raise ctx.fail(f"control #{index + 1} must be a mapping", ln)
    known = {"id", "title", "requirement", "source", "evidence", "rule", "severity", "applies_to", "if_missing",
             "notes"}
    extra = sorted(set(raw) - known)
    if extra:
        raise ctx.fail(f"control #{index + 1}: unknown field {extra[0]!r} (known: {', '.join(sorted(known))})", ln)
    cid = raw.get("id")
    if not isinstance(cid, str) or not _ID_RE.match(cid):
        raise ctx.fail(f"control #{index + 1}: 'id' must match {_ID_RE.pattern}", ln)
    where = f"control {cid}"
    title = ctx.text(raw, "title", ln, max_len=400)
    requirement = ctx.text(raw, "requirement", ln, max_len=4000)

    src = raw.get("source")
    if not isinstance(src, dict):
        raise ctx.fail(f"{where}: 'source' must be a mapping with regulation, topic and optional article", ln)
    sl = _line(src, ln)
    bad = sorted(set(src) - {"regulation", "article", "topic", "verified"})
    if bad:
        raise ctx.fail(f"{where}: unknown source field {bad[0]!r} (a comma inside {{...}} splits a value: "
                       "quote values that contain commas)", sl)
    article = src.get("article")
    if article is not None and not (isinstance(article, str | int) and str(article).strip()):
        raise ctx.fail(f"{where}: source.article must be text (or left out when unsure)", sl)
    verified = src.get("verified", True)
    if not isinstance(verified, bool):
        raise ctx.fail(f"{where}: source.verified must be true or false, got {verified!r}", sl)
    notes = ctx.text(raw, "notes", ln, required=False, max_len=4000)
    if not verified and not notes:
        raise ctx.fail(f"{where}: source.verified is false: say in 'notes' what could not be verified", sl)
    if verified and notes.upper().startswith("UNVERIFIED"):  # the first format's marker: would pass silently
        raise ctx.fail(f"{where}: notes start with 'UNVERIFIED': set 'verified: false' under 'source' instead", sl)
    source = Source(regulation=ctx.text(src, "regulation", sl, max_len=400), topic=ctx.text(src, "topic", sl),
                    article=str(article).strip() if article is not None else None, verified=verified)

    ev = raw.get("evidence")
    if not isinstance(ev, list) or not ev:
        raise ctx.fail(f"{where}: 'evidence' must be a non-empty list of keys", ln)
    for k in ev:
        if not isinstance(k, str) or not _KEY_RE.match(k):
            raise ctx.fail(f"{where}: bad evidence key {k!r} (lowercase, dotted: section.name)", _line(ev, ln))
    if len(set(ev)) != len(ev):
        raise ctx.fail(f"{where}: evidence keys repeat", _line(ev, ln))

    rule = raw.get("rule")
    if not isinstance(rule, dict) or "met" not in rule:
        raise ctx.fail(f"{where}: 'rule' must be a mapping with 'met' (and optional 'partly')", ln)
    rl = _line(rule, ln)
    bad = sorted(set(rule) - {"met", "partly"})
    if bad:
        raise ctx.fail(f"{where}: unknown rule field {bad[0]!r} (met, partly)", rl)
    met = parse_condition(rule["met"], path=ctx.path, line=rl)
    partly = parse_condition(rule["partly"], path=ctx.path, line=rl) if rule.get("partly") is not None else None
    used = met.keys() | (partly.keys() if partly else set())
    undeclared = sorted(used - set(ev))
    if undeclared:
        raise ctx.fail(f"{where}: rule reads {undeclared[0]!r}, which is not listed under 'evidence'", rl)

    severity = raw.get("severity")
    if severity not in SEVERITIES:
        raise ctx.fail(f"{where}: 'severity' must be one of {', '.join(SEVERITIES)}, got {severity!r}", ln)
    applies = raw.get("applies_to", ["any"])
    if not isinstance(applies, list) or not applies:
        raise ctx.fail(f"{where}: 'applies_to' must be a non-empty list of feature types", ln)
    for a in applies:
        if a not in FEATURE_TYPES:
            raise ctx.fail(f"{where}: unknown feature type {a!r} (known: {', '.join(FEATURE_TYPES)})",
                           _line(applies, ln))
    if_missing = raw.get("if_missing", "not_assessed")
    if if_missing not in MISSING_POLICIES:
        raise ctx.fail(f"{where}: 'if_missing' must be one of {', '.join(MISSING_POLICIES)}", ln)
    return Control(id=cid, title=title, requirement=requirement, source=source, evidence=tuple(ev), met=met,
                   partly=partly, severity=severity, applies_to=tuple(applies), if_missing=if_missing, line=ln,
                   notes=notes)


def parse_control_text(text: str, path: str | Path = "<string>") -> ControlSet:
    """Parse and validate the YAML text of one control file."""
    p = str(path)
    ctx = _Ctx(p)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise ctx.fail(f"file larger than {MAX_FILE_BYTES} bytes", None)
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ctx.fail(f"not valid YAML: {e.problem or e}", mark.line + 1 if mark else None) from e
    except yaml.YAMLError as e:
        raise ctx.fail(f"not valid YAML: {e}", None) from e
    if not isinstance(doc, dict):
        raise ctx.fail("a control file is a mapping with framework, title, regulation, version, controls", 1)
    known = {"framework", "title", "regulation", "version", "description", "controls"}
    extra = sorted(set(doc) - known)
    if extra:
        raise ctx.fail(f"unknown top-level field {extra[0]!r} (known: {', '.join(sorted(known))})", _line(doc, 1))
    framework = doc.get("framework")
    if not isinstance(framework, str) or not _ID_RE.match(framework):
        raise ctx.fail(f"'framework' must be an id matching {_ID_RE.pattern}", _line(doc, 1))
    version = doc.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ctx.fail("'version' must be a positive integer", _line(doc, 1))
    raw_controls = doc.get("controls")
    if not isinstance(raw_controls, list) or not raw_controls:
        raise ctx.fail("'controls' must be a non-empty list", _line(doc, 1))
    if len(raw_controls) > MAX_CONTROLS:
        raise ctx.fail(f"more than {MAX_CONTROLS} controls", _line(raw_controls, 1))
    controls: list[Control] = []
    seen: dict[str, int | None] = {}
    for i, raw in enumerate(raw_controls):
        c = _parse_control(ctx, raw, i, _line(raw_controls, 1))
        if c.id in seen:
            raise ctx.fail(f"control id {c.id!r} repeats (first at line {seen[c.id]})", c.line)
        seen[c.id] = c.line
        controls.append(c)
    return ControlSet(framework=framework, title=ctx.text(doc, "title", 1, max_len=400),
                      regulation=ctx.text(doc, "regulation", 1, max_len=400), version=version,
                      controls=tuple(controls), path=p,
                      description=ctx.text(doc, "description", 1, required=False, max_len=8000))


def load_control_file(path: str | Path) -> ControlSet:
    """Load and validate one control file; `ControlFileError` (naming file and line) if it is unusable."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ControlFileError(p, f"file larger than {MAX_FILE_BYTES} bytes")
        raw = p.read_bytes()
    except OSError as e:
        raise ControlFileError(p, f"cannot read: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ControlFileError(p, f"not UTF-8 text (byte {e.start})") from e
    return parse_control_text(text, p)


def packaged_control_files() -> list[Path]:
    """The control files shipped with voxwarden (src/voxwarden/assess/controls/*.yaml), sorted by name."""
    root = resources.files("voxwarden.assess") / "controls"
    return sorted(Path(str(f)) for f in root.iterdir() if f.name.endswith((".yaml", ".yml")))


def load_controls(paths: list[str | Path] | None = None) -> list[ControlSet]:
    """Load several control files (the packaged ones when `paths` is None); frameworks must be unique.

    A directory in `paths` contributes every *.yaml / *.yml file inside it.
    """
    files: list[Path] = []
    for p in (packaged_control_files() if paths is None else [Path(x) for x in paths]):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml")))
        else:
            files.append(p)
    sets: list[ControlSet] = []
    seen: dict[str, str] = {}
    for f in files:
        cs = load_control_file(f)
        if cs.framework in seen:
            raise ControlFileError(f, f"framework {cs.framework!r} already defined in {seen[cs.framework]}")
        seen[cs.framework] = str(f)
        sets.append(cs)
    return sets
