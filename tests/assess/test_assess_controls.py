"""Control files: the packaged ones load, and every kind of bad file is refused naming file and line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from voxwarden.assess.controls import (
    FEATURE_TYPES,
    SEVERITIES,
    UNVERIFIED_MARK,
    ControlFileError,
    load_control_file,
    load_controls,
    packaged_control_files,
    parse_condition,
    parse_control_text,
)

GOOD = textwrap.dedent("""\
    framework: test-fw
    title: Test framework
    regulation: Test regulation
    version: 1
    controls:
      - id: T-1
        title: Logs kept
        requirement: Keep logs.
        source: {regulation: Test regulation, article: "Art. 5", topic: logs}
        evidence: [logging.retention_days]
        rule:
          met: "logging.retention_days >= 184"
          partly: "logging.retention_days >= 180"
        severity: high
        applies_to: [voice_social]
      - id: T-2
        title: Notice
        requirement: Say it.
        source: {regulation: Test regulation, topic: notices}
        evidence: [labelling.notice_positions, labelling.explicit_audio_notice]
        rule:
          met: {all: ["labelling.explicit_audio_notice is true", {any: ["labelling.notice_positions contains start",
                "labelling.notice_positions contains end"]}]}
        severity: low
    """)


def test_packaged_files_load_and_are_consistent() -> None:
    files = packaged_control_files()
    assert {f.name for f in files} == {
        "cac-2018-security-assessment.yaml", "deep-synthesis-2023.yaml", "labelling-2025-gb45438.yaml"}
    assert [len(cs.controls) for cs in load_controls()] == [13, 14, 12]
    sets = load_controls()
    assert [s.framework for s in sets] == [f.stem for f in files]
    for cs in sets:
        assert len(cs.controls) >= 8
        for c in cs.controls:
            assert c.severity in SEVERITIES
            assert set(c.applies_to) <= set(FEATURE_TYPES)
            assert c.source.regulation and c.source.topic and c.requirement
            assert all(k.split(".")[0] in {"governance", "logging", "detection", "live", "labelling"}
                       for k in c.evidence)
    cac = sets[0].get("CAC18-LOG-RETENTION")
    assert cac.met.text == "logging.retention_days >= 184" and cac.if_missing == "not_met"
    assert sets[1].get("DS23-CONSPICUOUS-LABEL").source.article == "Art. 17(1)(ii)"
    assert sets[0].get("CAC18-LOG-FIELDS").source.article == "Art. 5(3)"


def test_good_text_parses() -> None:
    cs = parse_control_text(GOOD, "good.yaml")
    assert cs.framework == "test-fw" and [c.id for c in cs.controls] == ["T-1", "T-2"]
    t1, t2 = cs.controls
    assert t1.line == 6 and t2.line == 16
    assert t1.source.cite() == "Test regulation, Art. 5 (logs)"
    assert t2.applies_to == ("any",) and t2.if_missing == "not_assessed"
    assert t2.met.kind == "all" and t2.met.keys() == {"labelling.explicit_audio_notice", "labelling.notice_positions"}
    assert cs.evidence_keys() == {"logging.retention_days", "labelling.notice_positions",
                                  "labelling.explicit_audio_notice"}


@pytest.mark.parametrize(("old", "new", "line", "words"), [
    ("severity: high", "severity: urgent", 6, "severity"),
    ("applies_to: [voice_social]", "applies_to: [toasters]", 15, "unknown feature type 'toasters'"),
    ('met: "logging.retention_days >= 184"', 'met: "logging.retention_days >= lots"', 12, "needs a number"),
    ('met: "logging.retention_days >= 184"', 'met: "logging.retention_days ~ 184"', 12, "cannot read condition"),
    ('met: "logging.retention_days >= 184"', 'met: "logging.other >= 184"', 12, "not listed under 'evidence'"),
    ("id: T-2", "id: T-1", 16, "repeats"),
    ("    title: Notice\n", "    title: Notice\n    colour: red\n", 16, "unknown field 'colour'"),
    ("evidence: [logging.retention_days]", "evidence: [Logging Days]", 10, "bad evidence key"),
    ("evidence: [logging.retention_days]", "evidence: []", 6, "non-empty list"),
    ("topic: logs}", "topic: logs, kept}", 9, "unknown source field"),
    ("version: 1", "version: one", 1, "version"),
    ("version: 1\n", "version: 1\nversion: 2\n", 1, "duplicate key"),
    ("  - id: T-1\n", "  - id: T-1\n   bad: [\n", None, "not valid YAML"),
])
def test_bad_text_names_line(old: str, new: str, line: int | None, words: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(ControlFileError) as ei:
        parse_control_text(text, "bad.yaml")
    e = ei.value
    assert words in str(e)
    assert str(e).startswith("bad.yaml")
    if line is not None:
        assert e.line == line, str(e)
    else:
        assert e.line is not None


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text", "framework: x\n", "\x00\x01"])
def test_not_a_control_file(text: str) -> None:
    with pytest.raises(ControlFileError):
        parse_control_text(text, "x.yaml")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ControlFileError, match="cannot read"):
        load_control_file(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("title: caf\xe9".encode("latin-1"))
    with pytest.raises(ControlFileError, match="not UTF-8"):
        load_control_file(bad)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(ControlFileError, match="larger than"):
        load_control_file(big)
    bomb = tmp_path / "bomb.yaml"  # YAML tags outside the safe set are refused
    bomb.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(ControlFileError, match="not valid YAML"):
        load_control_file(bomb)


def test_load_directory_and_duplicate_framework(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "ignored.txt").write_text("not a control file")
    sets = load_controls([tmp_path])
    assert [s.framework for s in sets] == ["test-fw"]
    (tmp_path / "b.yml").write_text(GOOD)
    with pytest.raises(ControlFileError, match="already defined") as ei:
        load_controls([tmp_path])
    assert ei.value.path.endswith("b.yml")


def test_parse_condition_forms() -> None:
    c = parse_condition({"not": "a.b is true"})
    assert c.kind == "not" and c.keys() == {"a.b"}
    assert parse_condition("a.b in [x, y]").value == ["x", "y"]
    assert parse_condition("a.b exists").op == "exists"
    assert parse_condition("a.b == 'text with spaces'").value == "text with spaces"
    for bad in ["a.b in x", {"all": []}, {"some": ["a.b exists"]}, {"all": ["a.b exists"], "any": []}, 42,
                "A.B exists"]:
        with pytest.raises(ControlFileError):
            parse_condition(bad)


def test_alias_bomb_is_cheap_and_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(ControlFileError, match="unknown top-level field"):
        parse_control_text("\n".join(lines) + "\nframework: x\n", "bomb.yaml")
    bomb = GOOD.replace("evidence: [logging.retention_days]", "evidence: &e [[a, b], [c]]", 1)
    with pytest.raises(ControlFileError, match="bad evidence key"):
        parse_control_text(bomb, "bomb.yaml")


# ---------------------------------------------------------------------------------------- citations

#: An article reference as the shipped files write it: "Art. 5(3)", "Art. 5(7)-(8)", "Art. 3; Art. 6",
#: "Measures Art. 6(1), (2), (4); GB 45438-2025 Annex E", "GB 45438-2025 cl. 5.3".
_ARTICLE_RE = re.compile(r"(Art\. \d+|cl\. \d+(\.\d+)*|Annex [A-Z])")
_URL_RE = re.compile(r"https?://\S+")


def citation_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with the citations of one control file (parsed YAML): each control must name an
    article, or be marked ``source.verified: false`` with `notes` saying what is uncertain - not both, not
    neither. (The report prints the mark next to the citation; `Source.cite()` appends it.)"""
    problems = []
    for c in doc.get("controls") or []:
        cid = c.get("id", "?")
        src = c.get("source") or {}
        article = str(src.get("article") or "").strip()
        unverified = src.get("verified", True) is False
        if unverified and not str(c.get("notes") or "").strip():
            problems.append(f"{cid}: marked verified: false but its notes do not say what is uncertain")
        if str(c.get("notes") or "").lstrip().startswith("UNVERIFIED"):
            problems.append(f"{cid}: old 'UNVERIFIED:' notes marker; use source.verified: false")
        if article and unverified:
            problems.append(f"{cid}: cites {article!r} and is marked verified: false")
        elif not article and not unverified:
            problems.append(f"{cid}: names no article and is not marked verified: false")
        elif article and not _ARTICLE_RE.search(article):
            problems.append(f"{cid}: article {article!r} does not read as an article or clause")
    return problems


def test_every_shipped_control_names_an_article_or_is_marked_unverified() -> None:
    checked = 0
    for f in packaged_control_files():
        text = f.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
        assert citation_problems(doc) == [], f.name
        checked += len(doc["controls"])
        # the header says where the articles were checked
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        assert "Article check" in comments and _URL_RE.search(comments), f.name
    assert checked == sum(len(cs.controls) for cs in load_controls())


def test_citation_check_catches_bad_files() -> None:
    doc = {"controls": [
        {"id": "A", "source": {"regulation": "R", "topic": "t"}},                                 # neither
        {"id": "B", "source": {"regulation": "R", "topic": "t", "article": "Art. 2", "verified": False},
         "notes": "maybe art. 3"},                                                              # both
        {"id": "C", "source": {"regulation": "R", "topic": "t", "article": "somewhere"}},          # not an article
        {"id": "D", "source": {"regulation": "R", "topic": "t"}, "notes": "looked, unsure"},      # no marker
        {"id": "E", "source": {"regulation": "R", "topic": "t", "article": "Art. 5(3)"}},         # fine
        {"id": "F", "source": {"regulation": "R", "topic": "t", "verified": False},
         "notes": "believed art. 9"},                                                           # fine
        {"id": "G", "source": {"regulation": "R", "topic": "t", "verified": False}},              # says not why
        {"id": "H", "source": {"regulation": "R", "topic": "t", "article": "Art. 1"},
         "notes": "UNVERIFIED: art. 9?"},                                                       # old marker
    ]}
    problems = citation_problems(doc)
    assert [p.split(":")[0] for p in problems] == ["A", "B", "C", "D", "G", "H"]


def test_control_ids_unique_across_shipped_files() -> None:
    ids: dict[str, str] = {}
    for f in packaged_control_files():
        for c in yaml.safe_load(f.read_text(encoding="utf-8"))["controls"]:
            assert c["id"] not in ids, f"{c['id']} in {f.name} and {ids[c['id']]}"
            ids[c["id"]] = f.name
    sets = load_controls()
    assert len(ids) == sum(len(cs.controls) for cs in sets)
    prefixes = {"cac-2018-security-assessment": "CAC18-", "deep-synthesis-2023": "DS23-",
                "labelling-2025-gb45438": "LB25-"}
    for cs in sets:  # the finding key "<framework>:<id>" stays readable: ids carry their framework's prefix
        assert all(c.id.startswith(prefixes[cs.framework]) for c in cs.controls), cs.framework


# ---------------------------------------------------------------------------------------- verified / notes

UNVERIFIED = GOOD.replace(
    "    source: {regulation: Test regulation, topic: notices}\n",
    "    source: {regulation: Test regulation, topic: notices, verified: false}\n"
    "    notes: 'Believed to be art. 9; not checked against the text.'\n", 1)


def test_notes_and_verified_are_kept() -> None:
    assert UNVERIFIED != GOOD
    t1, t2 = parse_control_text(UNVERIFIED, "notes.yaml").controls
    assert t1.verified is True and t1.source.verified is True and t1.notes == ""
    assert t2.verified is False and t2.notes == "Believed to be art. 9; not checked against the text."
    assert t1.source.cite() == "Test regulation, Art. 5 (logs)"
    assert t2.source.cite() == f"Test regulation (notices) [{UNVERIFIED_MARK}]"
    explicit = GOOD.replace("topic: logs}", "topic: logs, verified: true}", 1)
    assert parse_control_text(explicit, "v.yaml").controls[0].verified is True


@pytest.mark.parametrize(("old", "new", "words"), [
    ("verified: false}", "verified: maybe}", "source.verified must be true or false"),
    ("verified: false}", "verified: 0}", "source.verified must be true or false"),
    ("    notes: 'Believed to be art. 9; not checked against the text.'\n", "",
     "say in 'notes' what could not be verified"),
    ("notes: 'Believed to be art. 9; not checked against the text.'", "notes: [a, b]", "'notes' must be"),
    ("notes: 'Believed to be art. 9; not checked against the text.'", "notes: '   '", "say in 'notes'"),
    ("verified: false}\n    notes: 'Believed", "verified: true}\n    notes: 'UNVERIFIED: believed",
     "set 'verified: false' under 'source' instead"),  # the first format's marker is not silently dropped
])
def test_bad_verified_or_notes_refused(old: str, new: str, words: str) -> None:
    text = UNVERIFIED.replace(old, new, 1)
    assert text != UNVERIFIED
    with pytest.raises(ControlFileError, match=re.escape(words)) as ei:
        parse_control_text(text, "bad.yaml")
    assert ei.value.line is not None and 16 <= ei.value.line <= 20, str(ei.value)


def test_shipped_unverified_controls() -> None:
    """The controls whose article numbers are not confirmed are marked in the data (not only in comments),
    with their notes kept, and only those."""
    marked = {(cs.framework, c.id): c for cs in load_controls() for c in cs.controls if not c.verified}
    assert set(marked) == {("deep-synthesis-2023", "DS23-RUMOUR-REFUTATION"),
                           ("deep-synthesis-2023", "DS23-COMPLAINTS"),
                           ("deep-synthesis-2023", "DS23-NEW-FUNCTION-ASSESSMENT"),
                           ("deep-synthesis-2023", "DS23-MANAGEMENT-RULES")}
    for c in marked.values():
        assert c.source.article is None and "believed to be Art" in c.notes and UNVERIFIED_MARK in c.source.cite()
    assert "Art. 11" in marked[("deep-synthesis-2023", "DS23-RUMOUR-REFUTATION")].notes
    assert "Arts. 7-8" in marked[("deep-synthesis-2023", "DS23-MANAGEMENT-RULES")].notes


@pytest.mark.parametrize(("framework", "cid", "article", "keys"), [
    ("cac-2018-security-assessment", "CAC18-REPORT-FILED", "Art. 6; Art. 7", {"governance.assessment_report_filed"}),
    ("labelling-2025-gb45438", "LB25-UNLABELLED-OUTPUT-LOGS", "Measures Art. 9",
     {"labelling.unlabelled_output_on_request", "governance.labelling_in_user_agreement", "logging.retention_days"}),
    ("labelling-2025-gb45438", "LB25-USER-AGREEMENT", "Measures Art. 8", {"governance.labelling_in_user_agreement"}),
    ("deep-synthesis-2023", "DS23-MANAGEMENT-RULES", None, {"governance.deep_synthesis_rules_published"}),
])
def test_controls_added_for_the_missing_requirements(framework: str, cid: str, article: str | None,
                                                     keys: set[str]) -> None:
    cs = next(s for s in load_controls() if s.framework == framework)
    c = cs.get(cid)
    assert c.source.article == article and set(c.evidence) == keys
    assert c.severity in SEVERITIES and c.requirement and c.applies_to != ("any",)
